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
package re-exports what callers use (``from images import services``); the modules import
each other directly, never through this file.
"""

from __future__ import annotations

from dockweb.engine import get_store
from images.services.builds import (
    BuildProgress,
    BuildRefused,
    build_image,
    commit_container,
    run_build,
    start_build,
)
from images.services.common import containers_using_images, get_client
from images.services.explorer import (
    EXPLORER_ROWS,
    analyze_image,
    directory_listing,
    layer_changes,
    layer_explorer,
)
from images.services.listing import (
    image_history,
    inspect_image,
    list_images,
)
from images.services.mirror import sync_images
from images.services.operations import (
    load_images,
    mount_image,
    push_image,
    remove_image,
    run_operation,
    save_images,
    start_removal,
    start_tag,
    tag_image,
    unmount_image,
    untag_summary,
)
from images.services.pages import get_image, image_detail, image_table
from images.services.pulls import (
    WORKER_STOPPED,
    PullProgress,
    active_pulls,
    cancel_pull,
    layer_limits,
    normalize_reference,
    pull_image,
    run_pull,
    start_pull,
)

__all__ = [
    "EXPLORER_ROWS",
    "WORKER_STOPPED",
    "BuildProgress",
    "BuildRefused",
    "PullProgress",
    "active_pulls",
    "analyze_image",
    "build_image",
    "cancel_pull",
    "commit_container",
    "containers_using_images",
    "directory_listing",
    "get_client",
    "get_image",
    "get_store",
    "image_detail",
    "image_history",
    "image_table",
    "inspect_image",
    "layer_changes",
    "layer_explorer",
    "layer_limits",
    "list_images",
    "load_images",
    "mount_image",
    "normalize_reference",
    "pull_image",
    "push_image",
    "remove_image",
    "run_build",
    "run_operation",
    "run_pull",
    "save_images",
    "start_build",
    "start_pull",
    "start_removal",
    "start_tag",
    "sync_images",
    "tag_image",
    "unmount_image",
    "untag_summary",
]
