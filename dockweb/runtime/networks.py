"""The networks dockweb has: dockerd's three predefined ones. A container runs in a network
namespace of its own with only a loopback (``none``; ``bridge`` is taken as that) or in the
host's (``host``). Their IDs are stable for a store, as dockerd keeps its networks'."""

from __future__ import annotations

import hashlib
import os

# name -> driver, as dockerd lists them
PREDEFINED = {"bridge": "bridge", "host": "host", "none": "null"}


def network_id(root: str, name: str) -> str:
    """A predefined network's ID: 64 hex, the same for a store every time."""
    return hashlib.sha256(f"dockweb-network:{os.path.abspath(root)}:{name}".encode()).hexdigest()


def container_network(spec) -> str:
    """The network a container's spec puts it in."""
    name = getattr(spec, "network", "") or "none"
    return name if name in PREDEFINED else "none"
