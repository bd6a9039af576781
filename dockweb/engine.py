"""The runtime as the Django side configures it: the store and the container manager.

Functions, not module-level instances: each call reads the settings (tests change
``DOCKWEB_ROOT``), and a future host argument has one place to go.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from django.conf import settings

from dockweb.runtime.store import Store

if TYPE_CHECKING:
    from dockweb.runtime.containers import ContainerManager
    from dockweb.runtime.spawner import Spawner


def get_store() -> Store:
    """The layer and image store at ``DOCKWEB_ROOT``."""
    return Store(str(settings.DOCKWEB_ROOT))


def get_manager() -> ContainerManager:
    """The ContainerManager on ``get_store()``, whose supervisor mirrors exits into this
    process's database (``exit_command``); its supervisors forked by this process's
    spawner when it has one (``use_spawner``)."""
    from dockweb.runtime.containers import ContainerManager

    return ContainerManager(get_store(), exit_command=exit_command(), spawner=_spawner)


_spawner: Spawner | None = None


def use_spawner() -> Spawner:
    """Make this long-lived, threaded process (the Engine API service) fork containers'
    supervisors through a helper of its own (``dockweb.runtime.spawner``) rather than start
    an interpreter for each: started now, used by every ``get_manager()`` from then on. With
    a SQLite database the supervisors mirror a container's exit in-process, as the CLI's
    fast run path does."""
    global _spawner
    if _spawner is None:
        from dockweb.runtime.spawner import Spawner

        hook: list[str] = []
        url = database_url()
        if url.startswith("sqlite:///"):
            db, root = url[len("sqlite:///") :], str(settings.DOCKWEB_ROOT)
            hook = ["containers.exit_hook", "--database", db, "--root", root]
        _spawner = Spawner(hook)
        _spawner.start()
    return _spawner


def exit_command() -> list[str]:
    """What the supervisor runs after a container exits (the container ID is appended).

    ``manage.py container_exited`` with this process's data directory, store and database,
    so the exit is mirrored into the same database whoever started the container.
    """
    env = [f"DOCKWEB_DATA={settings.DOCKWEB_DATA}", f"DOCKWEB_ROOT={settings.DOCKWEB_ROOT}"]
    url = database_url()
    if url:
        env.append(f"DATABASE_URL={url}")
    manage = os.path.join(settings.BASE_DIR, "manage.py")
    return ["/usr/bin/env", *env, sys.executable, manage, "container_exited"]


def database_url() -> str:
    """The database this process really uses, as a DATABASE_URL (the test database under
    pytest), so the supervisor's exit command writes where this process reads."""
    from urllib.parse import quote

    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{os.path.abspath(db['NAME'])}"
    if db["ENGINE"].endswith("postgresql"):
        auth = quote(db.get("USER") or "")
        if db.get("PASSWORD"):
            auth += ":" + quote(db["PASSWORD"])
        host = db.get("HOST") or "localhost"
        port = f":{db['PORT']}" if db.get("PORT") else ""
        return f"postgres://{auth}@{host}{port}/{quote(db['NAME'])}"
    return os.environ.get("DATABASE_URL", "")
