"""Engine API: exec."""

from __future__ import annotations

from dockweb.dockerapi.router import Routes

routes = Routes()
