"""Whether the CLI's SQLite database already has every migration, without asking Django.

Django's check (loading every migration into a MigrationExecutor) costs about 40 ms a
command, and setting Django up at all about 0.4 s. After a successful check or migrate,
``record`` writes a stamp beside the database: a fingerprint of the installed apps'
migration files (names and sizes) and of the database file (device and inode, so that a
deleted and recreated database does not match), then each app and its migrations
directory. ``is_current`` compares it again. Adding, removing or editing a migration, or
replacing the database, makes the next command check (and migrate) through Django again.
PostgreSQL databases are never stamped.

``is_current_as_recorded`` checks the same without the settings (the fast ``run`` path
does not import them, about 10 ms): over the apps and directories the stamp names. An app
added to INSTALLED_APPS since is not seen there; the next command that loads the settings
migrates it, and ``run`` writes only tables of apps the stamp names.
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


def _migration_dirs(settings) -> list[tuple[str, str]]:
    """(app, its migrations directory, or "" when the app is not importable)."""
    out = []
    for app in settings.INSTALLED_APPS:
        spec = importlib.util.find_spec(app)
        if spec is None or not spec.submodule_search_locations:
            out.append((app, ""))
        else:
            out.append((app, os.path.join(list(spec.submodule_search_locations)[0], "migrations")))
    return out


def _fingerprint(db: str, dirs: list[tuple[str, str]]) -> str | None:
    try:
        st = os.stat(db)
    except FileNotFoundError:
        return None
    h = hashlib.sha256(f"{st.st_dev}:{st.st_ino}\n".encode())
    for app, migrations in dirs:
        if not migrations:
            h.update(f"{app}: missing\n".encode())
            continue
        try:
            entries = sorted(os.scandir(migrations), key=lambda e: e.name)
        except FileNotFoundError:
            continue
        for e in entries:
            if e.name.endswith(".py"):
                h.update(f"{app}/{e.name}:{e.stat().st_size}\n".encode())
    return h.hexdigest()


def fingerprint(settings, db: str) -> str | None:
    """None when the database file does not exist."""
    return _fingerprint(db, _migration_dirs(settings))


def _stamp(settings, db: str) -> list[str] | None:
    """The stamp's lines for ``settings``: the fingerprint, then each app and directory."""
    dirs = _migration_dirs(settings)
    value = _fingerprint(db, dirs)
    return None if value is None else [value, *(f"{a}\t{d}" for a, d in dirs)]


def _read_stamp(db: str) -> list[str]:
    try:
        with open(_stamp_path(db)) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def is_current(settings) -> bool:
    db = sqlite_path(settings)
    if db is None:
        return False
    expected = _stamp(settings, db)
    return expected is not None and _read_stamp(db) == expected


def is_current_as_recorded(db: str) -> bool:
    """``is_current`` over the apps the stamp names (see the module's docstring)."""
    stamp = _read_stamp(db)
    dirs = [tuple(line.split("\t", 1)) for line in stamp[1:]]
    if not dirs or any(len(d) != 2 for d in dirs):
        return False  # an older stamp, without its apps: the settings' check restamps it
    return stamp[0] == _fingerprint(db, dirs)


def record(settings) -> None:
    """Stamp the database as migrated (after Django checked or migrated it). Atomic."""
    db = sqlite_path(settings)
    lines = _stamp(settings, db) if db else None
    if lines is None:
        return
    tmp = f"{_stamp_path(db)}.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write("".join(f"{line}\n" for line in lines))
    os.replace(tmp, _stamp_path(db))
