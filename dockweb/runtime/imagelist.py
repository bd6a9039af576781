"""Which images Docker lists, which it calls dangling, and which layers images share: the
rules of moby's image list (daemon/images/images.go), image prune (image_prune.go) and
``system df``, once, for every caller (the store's listing, the database's pages, the disk
usage and prune, in the runtime and in the apps).

Each rule takes plain facts about one image (tagged, referenced, has a child image), so it
serves store records and database rows alike. Plain Python: no Django, no Celery.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

# what the image list puts in RepoTags and RepoDigests for an image without references
NONE_TAGS = ["<none>:<none>"]
NONE_DIGESTS = ["<none>@<none>"]


def with_children(parents: Iterable[str | None]) -> set[str]:
    """The IDs of the images that have a child, from every image's parent ID (or None)."""
    return {p for p in parents if p}


def is_intermediate(*, referenced: bool, has_child: bool) -> bool:
    """An image with no reference at all (tag or digest) and a child image: a build step's
    image. ``docker images`` hides it without ``-a``; ``image prune`` never considers it."""
    return not referenced and has_child


def is_dangling(*, tagged: bool, has_child: bool) -> bool:
    """dockerd's dangling image (``-f dangling=true``, ``image prune`` without ``-a``): no tag
    (a digest reference does not count) and no child image (the image store's Heads)."""
    return not tagged and not has_child


def listed(
    *,
    tagged: bool,
    referenced: bool,
    has_child: bool,
    all: bool = False,
    dangling: bool | None = None,
    reference_filter: bool = False,
) -> bool:
    """Whether dockerd's image list shows an image. ``tagged`` and ``referenced`` count the
    references left after a ``reference=`` filter (``reference_filter``: one was given);
    ``dangling`` is the ``dangling=`` filter (None: not given). An image shown without any
    reference is the ``<none>:<none>`` row."""
    if dangling is True and not is_dangling(tagged=tagged, has_child=has_child):
        return False
    if not referenced:
        if not all and is_intermediate(referenced=False, has_child=has_child):
            return False
        if dangling is False or reference_filter:
            return False
    return True


def prune_candidate(
    *, tagged: bool, referenced: bool, has_child: bool, dangling_only: bool
) -> bool:
    """Whether ``image prune`` considers an image (moby's topImages, and with
    ``dangling_only`` its rule that an image with a tag stays): never an intermediate one."""
    if is_intermediate(referenced=referenced, has_child=has_child):
        return False
    return not dangling_only or is_dangling(tagged=tagged, has_child=has_child)


def layer_users[K: Hashable](layer_lists: Iterable[Iterable[K]]) -> dict[K, int]:
    """Layer -> the number of images using it, from each image's layers."""
    users: dict[K, int] = {}
    for layers in layer_lists:
        for layer in layers:
            users[layer] = users.get(layer, 0) + 1
    return users


def shared_size[K: Hashable](
    layers: Iterable[K], users: Mapping[K, int], sizes: Mapping[K, int]
) -> int:
    """An image's SharedSize: the sizes of its layers another image uses too (layers with no
    known size count nothing)."""
    return sum(sizes[la] for la in layers if users.get(la, 0) > 1 and la in sizes)
