"""``python -m dockweb.runtime.containers --root R --id ID ...``: the supervisor of one
container (``dockweb.runtime.shim``), started by ``ContainerManager.start``. Here rather
than in the shim so that the shim, which works through the manager, never imports it."""

from __future__ import annotations

import sys

from dockweb.runtime import shim
from dockweb.runtime.containers.manager import ContainerManager

if __name__ == "__main__":
    sys.exit(shim.main(make_manager=ContainerManager))
