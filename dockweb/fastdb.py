"""dockweb's SQLite database without Django, for the paths that must not pay for setting it
up (the CLI's fast `run` and `pull`, containers/fastmirror.py, the exit hook): where the
settings put the store and the database, a connection configured as Django's, and the audit
row access.audit writes.

Setting Django up costs about 0.35 s, more than a whole `docker run` and more than a warm
`docker pull`; these paths read only the environment, as dockweb/settings.py does.
"""

from __future__ import annotations

import datetime
import functools
import getpass
import json
import os
import shlex
import sqlite3
import sys

_BASE_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def package_root() -> str:
    """The checkout's root, where manage.py is (``BASE_DIR`` in the settings)."""
    return _BASE_DIR


def locations(environ=os.environ) -> tuple[str, str] | None:
    """(store root, SQLite database file) as dockweb.settings makes them of ``environ``
    (DOCKWEB_DATA, DOCKWEB_ROOT, DATABASE_URL), without importing the settings (pathlib,
    urllib, Django's exceptions: about 10 ms). None for another settings module, a database
    that is not a SQLite file, or a value the settings refuse: the ordinary path, which
    loads them, then runs the command or says why not. A test checks that both agree."""
    if environ.get("DJANGO_SETTINGS_MODULE", "dockweb.settings") != "dockweb.settings":
        return None

    def path(name: str, default: str) -> str | None:
        value = environ.get(name)
        p = os.path.expanduser(value) if value else default
        return p if os.path.isabs(p) else None

    data = path("DOCKWEB_DATA", os.path.join(_BASE_DIR, "var"))
    if data is None:
        return None
    root = path("DOCKWEB_ROOT", os.path.join(data, "store"))
    url = environ.get("DATABASE_URL", f"sqlite:///{os.path.join(data, 'db.sqlite3')}")
    # sqlite:////abs/path; anything the settings would unquote or split is theirs to read
    if root is None or not url.startswith("sqlite:////") or any(c in url for c in "%?#"):
        return None
    return root, url[len("sqlite:///") :]


def connect(path: str) -> sqlite3.Connection:
    """The connection as the settings configure Django's: WAL, busy timeout, autocommit.
    Closing it does not checkpoint the WAL when it is the database's last connection (two
    fsyncs, 5 to 15 ms, in every CLI run when no server keeps the database open): the WAL
    is checkpointed as it grows (every 1000 pages) and by Django's connections."""
    conn = sqlite3.connect(path, timeout=20, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.setconfig(sqlite3.SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, True)
    return conn


@functools.cache
def actor() -> str:
    """The audit row's actor, as access.audit.cli_actor."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid{os.getuid()}"


def audit(conn: sqlite3.Connection, action: str, words: list[str], code: int) -> None:
    """The audit row the ordinary path writes for a command (access.audit), with plain
    sqlite3, in the caller's transaction: the fast paths must not leave commands out of the
    dashboard's audit log. A failed insert is reported, never fatal (as access.audit)."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    try:
        conn.execute(
            "INSERT INTO access_auditevent (user_id, actor, action, target, detail, "
            "remote_addr, at) VALUES (NULL, ?, ?, ?, ?, NULL, ?)",
            (actor()[:150], action, shlex.join(words)[:512], json.dumps({"exit": code}), now),
        )
    except sqlite3.Error as err:
        print(f"audit: cannot record {action}: {err}", file=sys.stderr)
