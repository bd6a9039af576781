"""Whether the CLI's SQLite database already has every migration, without asking Django.

Django's check (loading every migration into a MigrationExecutor) costs about 40 ms a
command, and setting Django up at all about 0.4 s. After a successful check or migrate,
``record`` writes a stamp beside the database: a fingerprint of the installed apps'
migration files (names and sizes) and of the database file (device and inode, so that a
deleted and recreated database does not match). ``is_current`` compares it again. Adding,
removing or editing a migration, or replacing the database, makes the next command check
(and migrate) through Django again. PostgreSQL databases are never stamped.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os


def sqlite_path(settings) -> str | None:
    """The SQLite database file of ``settings`` (a module or Django's settings), or None."""
    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("sqlite3"):
        return None
    return str(db["NAME"])


def _stamp_path(db: str) -> str:
    return db + ".schema"


def fingerprint(settings, db: str) -> str | None:
    """None when the database file does not exist."""
    try:
        st = os.stat(db)
    except FileNotFoundError:
        return None
    h = hashlib.sha256(f"{st.st_dev}:{st.st_ino}\n".encode())
    for app in settings.INSTALLED_APPS:
        spec = importlib.util.find_spec(app)
        if spec is None or not spec.submodule_search_locations:
            h.update(f"{app}: missing\n".encode())
            continue
        migrations = os.path.join(list(spec.submodule_search_locations)[0], "migrations")
        try:
            entries = sorted(os.scandir(migrations), key=lambda e: e.name)
        except FileNotFoundError:
            continue
        for e in entries:
            if e.name.endswith(".py"):
                h.update(f"{app}/{e.name}:{e.stat().st_size}\n".encode())
    return h.hexdigest()


def is_current(settings) -> bool:
    db = sqlite_path(settings)
    if db is None:
        return False
    try:
        with open(_stamp_path(db)) as f:
            stamp = f.read().strip()
    except FileNotFoundError:
        return False
    return stamp == fingerprint(settings, db)


def record(settings) -> None:
    """Stamp the database as migrated (after Django checked or migrated it). Atomic."""
    db = sqlite_path(settings)
    value = fingerprint(settings, db) if db else None
    if value is None:
        return
    tmp = f"{_stamp_path(db)}.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(value + "\n")
    os.replace(tmp, _stamp_path(db))
