"""What the image services share: the registry client and the runtime's view of which
containers use which images. The store is ``dockweb.engine.get_store``; the job pattern
(queueing, claiming, progress, recording, abandoned rows) is ``dockweb.jobs``."""

from __future__ import annotations

import logging
import os

from django.conf import settings

from dockweb.engine import get_store
from dockweb.runtime.registry import RegistryClient
from dockweb.runtime.store import Store

log = logging.getLogger(__name__)


def get_client(credentials: dict[str, tuple[str, str]] | None = None) -> RegistryClient:
    """A registry client; ``credentials`` (host -> (user, password)) come before config.json."""
    # the docker CLI's own credentials (`docker login`), as `docker pull` would use them
    config = os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    config_path = os.path.join(config, "config.json")
    return RegistryClient(
        insecure_registries=tuple(settings.DOCKWEB_INSECURE_REGISTRIES),
        auth_config_path=config_path,
        credentials=credentials,
    )


def containers_using_images(store: Store | None = None) -> list[tuple[str, str, bool]]:
    """(container ID, image ID, running) for every container the runtime has, so that
    image removal refuses (or forces past) the images containers use, as Docker does."""
    from dockweb.runtime.containers import ContainerManager

    return ContainerManager(store or get_store()).used_images()
