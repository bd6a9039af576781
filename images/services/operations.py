"""Store operations (rmi, tag, mount, save, load, push) and removals and tags queued from
the pages and run by the worker as Operation rows."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.utils.translation import ngettext

from dockweb import jobs
from dockweb.engine import get_store
from dockweb.runtime import reference as refs
from dockweb.runtime.errors import Conflict, DockwebError, InvalidReference
from dockweb.runtime.store import Store
from dockweb.runtime.units import human_size
from images.models import Operation
from images.services.common import containers_using_images, get_client
from images.services.mirror import sync_after_change

log = logging.getLogger(__name__)


def remove_image(
    ref_or_id: str, *, force: bool = False, prune: bool = True
) -> list[tuple[str, str]]:
    store = get_store()
    try:
        # listed under the store's lock, which create holds while it resolves its image:
        # a container created meanwhile is either seen here or finds the image gone
        return store.remove(
            ref_or_id,
            force=force,
            prune=prune,
            containers=lambda: containers_using_images(store),
        )
    finally:
        # a removal that fails half-way (disk error) may still have changed the store
        sync_after_change(store)


def tag_image(source: str, target: str) -> None:
    store = get_store()
    store.tag(source, target)
    sync_after_change(store)


def mount_image(ref_or_id: str) -> str:
    store = get_store()
    return store.mount_image(store.lookup(ref_or_id).id)


def unmount_image(ref_or_id: str) -> bool:
    store = get_store()
    return store.unmount_image(store.lookup(ref_or_id).id)


def save_images(names: list[str], out, *, on_progress: Callable[[dict], None] | None = None):
    """``docker save``: write the images as one tarball to the binary stream ``out``."""
    from dockweb.runtime import imageio

    imageio.save(get_store(), names, out, on_progress=on_progress)


def load_images(
    tarball, *, on_output: Callable[[dict], None] | None = None, quiet: bool = False
) -> list[str]:
    """``docker load``: all or nothing, then bring the database mirror up to date."""
    from dockweb.runtime import imageio

    store = get_store()
    try:
        return imageio.load(store, tarball, on_output, quiet=quiet)
    finally:
        sync_after_change(store)


def push_image(
    reference: str,
    *,
    on_progress: Callable[[dict], None] | None = None,
    credentials: dict[str, tuple[str, str]] | None = None,
):
    """``docker push``; the pushed digest becomes a reference, mirrored in the database."""
    from dockweb.runtime import imageio

    store = get_store()
    result = imageio.push(store, get_client(credentials), reference, on_progress)
    sync_after_change(store)
    return result


# -- removal and tagging -----------------------------------------------------------------


def start_removal(
    ref_or_id: str, *, force: bool = False, prune: bool = True, user=None
) -> Operation:
    """Queue ``docker rmi [--force] [--no-prune]``; the worker runs it after commit."""
    ref_or_id = ref_or_id.strip()
    if not ref_or_id:
        raise InvalidReference("invalid reference format")
    refs.parse_any_reference(ref_or_id)  # InvalidReference, with Docker's message
    return _start_operation(
        Operation.Kind.REMOVE, {"ref": ref_or_id, "force": bool(force), "prune": bool(prune)}, user
    )


def start_tag(source: str, target: str, user=None, *, source_name: str = "") -> Operation:
    """Queue ``docker tag SOURCE TARGET``; the worker runs it after commit. ``source_name``
    is what the pages call the source (its tag when ``source`` is an ID)."""
    source, target = source.strip(), target.strip()
    if not source:
        raise InvalidReference("invalid reference format")
    if refs.parse_normalized_named(target).digest:
        raise DockwebError("refusing to create a tag with a digest reference")
    args = {"source": source, "target": target}
    if source_name:
        args["source_name"] = source_name
    return _start_operation(Operation.Kind.TAG, args, user)


def _start_operation(kind: str, args: dict, user) -> Operation:
    return jobs.start(Operation, user=user, kind=kind, args=args)


def _refused(op: Operation, err: BaseException) -> dict:
    # a hard conflict (dependent child images, running container) survives --force
    return {"conflict": isinstance(err, Conflict) and not getattr(err, "hard", False)}


@jobs.kind(
    "image_operation",
    model=Operation,
    task="images.tasks.run_operation",
    what=lambda op: op.kind,
    abandoned="the worker stopped during the operation; look at the image and try again",
    failed_fields=_refused,
)
def run_operation(op: Operation) -> dict:
    """Run a queued removal or tag in this process (the worker); ``run_operation(op_id)``.
    A no-op unless queued.

    Records Docker's result lines, the bytes freed, and on failure the error; a conflict
    that forcing may resolve sets ``conflict``.
    """
    store = get_store()
    if op.kind == Operation.Kind.REMOVE:
        return _run_removal(store, op.args)
    if op.kind == Operation.Kind.TAG:
        image_id = store.lookup(op.args["source"]).id
        tag_image(op.args["source"], op.args["target"])
        target = refs.parse_normalized_named(op.args["target"])
        target = target if target.tag else target.with_tag("latest")
        return {
            "result": [["Tagged", target.familiar_string()]],
            "image_id": image_id,
            **_references_left(store, image_id),
        }
    raise DockwebError(f"unknown operation {op.kind!r}")


def _run_removal(store: Store, args: dict) -> dict:
    try:
        image_id = store.lookup(args["ref"]).id
    except DockwebError:
        image_id = ""  # remove_image raises the error Docker gives
    sizes = {chain: la.size for chain, la in store.layers().items()}
    records = remove_image(
        args["ref"], force=args.get("force", False), prune=args.get("prune", True)
    )
    deleted_layers = [v for k, v in records if k == "Deleted" and v in sizes]
    return {
        "result": [list(r) for r in records],
        "image_id": image_id,
        "freed_bytes": sum(sizes[c] for c in deleted_layers),
        "deleted_layers": len(deleted_layers),
        **_references_left(store, image_id),
    }


def _references_left(store: Store, image_id: str) -> dict:
    left = store.references(image_id) if image_id and store.has_image(image_id) else []
    return {"references_left": len(left), "tags_left": sum(1 for r in left if r.tag)}


def untag_summary(op: Operation) -> str:
    """One sentence on what a finished removal did ("" while it runs or when it failed)."""
    if op.kind != Operation.Kind.REMOVE or op.status != Operation.Status.DONE:
        return ""
    if not op.deleted:
        # say what the image page lists: tags, and digest references (repo@sha256:…)
        tags, digests = op.tags_left, max(op.references_left - op.tags_left, 0)
        if not tags:
            return ngettext(
                "Untagged only: %(n)d digest reference keeps this image",
                "Untagged only: %(n)d digest references keep this image",
                digests,
            ) % {"n": digests}
        text = ngettext(
            "Untagged only: %(n)d other tag keeps this image",
            "Untagged only: %(n)d other tags keep this image",
            tags,
        ) % {"n": tags}
        if digests:
            text += " " + ngettext(
                "(and %(n)d digest reference)", "(and %(n)d digest references)", digests
            ) % {"n": digests}
        return text
    return ngettext(
        "Deleted: the image and %(k)d layer, %(size)s freed",
        "Deleted: the image and %(k)d layers, %(size)s freed",
        op.deleted_layers,
    ) % {"k": op.deleted_layers, "size": human_size(op.freed_bytes, 3)}
