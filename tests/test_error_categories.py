"""The runtime's error categories: each concrete error is caught by its category's
``except``, keeps its message, and belongs to no other category."""

from __future__ import annotations

import pytest

from dockweb.runtime import errors
from dockweb.runtime.registry import BlobReadError, BlobUnknown

CATEGORIES = (errors.NotFound, errors.Conflict, errors.InvalidArgument, errors.Unavailable)

MEMBERS = [
    (errors.NotFound, errors.ImageNotFound("No such image: busybox:latest")),
    (errors.NotFound, errors.ContainerNotFound("No such container: x")),
    (errors.NotFound, errors.VolumeNotFound("No such volume: v")),
    (errors.NotFound, errors.ManifestUnknown("manifest for a:b not found", status=404)),
    (errors.NotFound, BlobUnknown("blob unknown: blob unknown to registry", status=404)),
    (errors.Conflict, errors.ContainerConflict("Container x is already paused")),
    (errors.Conflict, errors.ContainerNotRunning("Container x is not running")),
    (errors.Conflict, errors.VolumeInUse("remove v: volume is in use - [x]")),
    (errors.InvalidArgument, errors.InvalidReference("invalid reference format")),
    (errors.InvalidArgument, errors.InvalidContainerSpec("No command specified")),
    (errors.Unavailable, errors.RegistryUnavailable('Get "https://h/v2/": i/o timeout')),
    (errors.Unavailable, BlobReadError("timed out: no data for 30 s")),
]


@pytest.mark.parametrize(("category", "err"), MEMBERS, ids=lambda v: type(v).__name__)
def test_it_catches_each_member_by_its_category(category, err):
    message = str(err)
    with pytest.raises(category) as caught:
        try:
            raise err
        except category:
            raise
        except Exception:  # noqa: BLE001 - only the category may catch it
            pytest.fail(f"{type(err).__name__} escaped except {category.__name__}")
    assert str(caught.value) == message
    assert isinstance(err, errors.DockwebError)
    assert [c for c in CATEGORIES if isinstance(err, c)] == [category]


def test_it_keeps_registry_errors_registry_errors():
    for err in (
        errors.ManifestUnknown("m"),
        errors.RegistryUnavailable("u"),
        BlobReadError("b"),
        BlobUnknown("b"),
    ):
        assert isinstance(err, errors.RegistryError)


def test_it_leaves_a_plain_registry_error_in_no_category():
    err = errors.RegistryError("received unexpected HTTP status: 500 Internal Server Error")
    assert not isinstance(err, CATEGORIES)
