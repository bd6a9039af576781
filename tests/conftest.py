"""Shared fixtures: a real registry (Debian's docker-registry) and images built from busybox-static."""

from __future__ import annotations

import pytest

from tests.support.registry import RegistryServer


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """A plain-HTTP registry on 127.0.0.1, no auth, shared by the whole session."""
    server = RegistryServer(tmp_path_factory.mktemp("registry"))
    server.start()
    yield server
    server.stop()
