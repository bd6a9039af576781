"""Image operations shared by the `dockweb` CLI, the Celery workers and the pages.

Each function opens the one store configured in settings (``DOCKWEB_ROOT``) and calls the
runtime; results are plain dicts shaped like Docker's API types (ImageSummary,
ImageInspect, HistoryResponseItem), so the CLI and the templates format the same data.

One module per concern: ``listing`` (image ls, inspect, history), ``mirror`` (the database
mirror of the store), ``pulls``, ``operations`` (rmi, tag, mount, save, load, push, and
queued removals and tags), ``pages`` (read-models for the pages, database only),
``explorer`` (layer analysis and explorer), ``builds`` (build, commit, Build page) and
``common`` (registry client, images in use); the store is ``dockweb.engine`` and the
job pattern ``dockweb.jobs``. This
package re-exports what callers use (``from images import services``; ``services.X``) and
imports the module behind a name when it is first used (PEP 562): importing the package
costs nothing, so a CLI command that names ``services`` at the top of its module pays for
the pulls, builds and registry client only if it uses them. The modules import each other
directly, never through this file.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the module of this package that defines it (dockweb.engine for get_store)
_HOMES = {
    "get_store": "dockweb.engine",
    **dict.fromkeys(
        (
            "BuildProgress",
            "BuildRefused",
            "build_image",
            "build_recorded",
            "receive_context",
            "commit_container",
            "mark_stages",
            "run_build",
            "start_build",
        ),
        "builds",
    ),
    **dict.fromkeys(("containers_using_images", "get_client"), "common"),
    **dict.fromkeys(
        (
            "EXPLORER_ROWS",
            "analyze_after_pull",
            "analyze_image",
            "directory_listing",
            "layer_changes",
            "layer_explorer",
        ),
        "explorer",
    ),
    **dict.fromkeys(("image_history", "inspect_image", "list_images"), "listing"),
    "sync_images": "mirror",
    **dict.fromkeys(
        (
            "load_images",
            "mount_image",
            "push_image",
            "remove_image",
            "run_operation",
            "save_images",
            "start_removal",
            "start_tag",
            "tag_image",
            "unmount_image",
            "untag_summary",
        ),
        "operations",
    ),
    **dict.fromkeys(("get_image", "image_detail", "image_table"), "pages"),
    **dict.fromkeys(
        (
            "WORKER_STOPPED",
            "PullProgress",
            "active_pulls",
            "cancel_pull",
            "layer_limits",
            "normalize_reference",
            "pull_here",
            "pull_image",
            "run_pull",
            "start_pull",
        ),
        "pulls",
    ),
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(home if "." in home else f"{__name__}.{home}")
    value = getattr(module, name)
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
