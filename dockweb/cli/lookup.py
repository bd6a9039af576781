"""The container a command names, or the docker client's 404 for it."""

from __future__ import annotations

from containers import services
from dockweb.cli.common import client_not_found, is_not_found, print_error
from dockweb.runtime.errors import DockwebError


def find_container(name: str):
    """The container ``name``, or None once the docker client's 404 for it is printed
    ("Error: No such container: x"); other errors propagate, printed as the daemon's."""
    try:
        return services.get_container(name)
    except DockwebError as err:
        if is_not_found(err):
            print_error(client_not_found("container", name))
            return None
        raise
