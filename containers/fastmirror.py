"""Mirror one container (and the volumes) into a SQLite database without setting Django up.

``services.sync_containers(id)`` does the same through the ORM; setting Django up costs
about 0.4 s, more than a whole ``docker run``, so the CLI's fast ``run`` path and the
supervisor's exit hook write the same rows with plain ``sqlite3`` instead. The values are
the ones the ORM would store (``dockweb.docker.containers.row_fields`` for the fields; JSON as
``json.dumps``; datetimes as Django's SQLite backend writes them: naive UTC,
``YYYY-MM-DD HH:MM:SS[.ffffff]``).
Only for a SQLite database whose schema is current (``dockweb/cli/schema.py``); a test
checks that both paths write equal rows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

from dockweb import live
from dockweb.docker.containers import container_json, inspect_volume, row_fields
from dockweb.runtime.containers import ContainerManager
from dockweb.runtime.errors import ContainerNotFound, DockwebError
from dockweb.runtime.units import parse_go_time
from networks.rows import network_rows

CONTAINER_TABLE = "containers_container"
VOLUME_TABLE = "containers_volume"
NETWORK_TABLE = "networks_network"


def _db_value(value):
    if isinstance(value, datetime):
        value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(" ")
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def container_ids(conn: sqlite3.Connection) -> set[str]:
    """The IDs of the containers the database mirrors."""
    return {row[0] for row in conn.execute(f"SELECT container_id FROM {CONTAINER_TABLE}")}


def sync_containers(conn: sqlite3.Connection, mgr: ContainerManager, ids: set[str]) -> None:
    """``sync_container`` for each of ``ids``."""
    for cid in sorted(ids):
        sync_container(conn, mgr, cid)


def sync_container(
    conn: sqlite3.Connection,
    mgr: ContainerManager,
    cid: str,
    *,
    then: Callable[[sqlite3.Connection], None] | None = None,
) -> None:
    """``services.sync_containers(cid)`` without Django: the row updated or inserted, or
    deleted when the runtime no longer has the container; the Volume rows mirrored.
    One transaction, which ``then(conn)`` joins (the CLI's audit row). Idempotent."""
    try:
        c = mgr.get(cid)
    except ContainerNotFound:
        c = None
    fields = None
    if c is not None:
        info = container_json(c, mgr, mgr.root)
        try:
            size = tuple(mgr.size(info["Id"]))
        except (DockwebError, OSError):
            size = None
        fields = row_fields(info, size)
    volumes = [(inspect_volume(v), bool(v.anonymous)) for v in mgr.volumes.list()]
    networks = network_rows(mgr) if _has_table(conn, NETWORK_TABLE) else None
    now = _db_value(datetime.now(UTC))
    conn.execute("BEGIN IMMEDIATE")
    try:
        if fields is None:
            conn.execute(f"DELETE FROM {CONTAINER_TABLE} WHERE container_id LIKE ? || '%'", (cid,))
        else:
            fields["synced_at"] = now
            names = list(fields)
            values = [_db_value(fields[n]) for n in names]
            updated = conn.execute(
                f"UPDATE {CONTAINER_TABLE} SET {', '.join(f'{n} = ?' for n in names)} "
                "WHERE container_id = ?",
                (*values, info["Id"]),
            ).rowcount
            if not updated:
                conn.execute(
                    f"INSERT INTO {CONTAINER_TABLE} (container_id, {', '.join(names)}) "
                    f"VALUES (?, {', '.join('?' for _ in names)})",
                    (info["Id"], *values),
                )
        _sync_volumes(conn, volumes, now)
        if networks is not None:
            _sync_networks(conn, networks, now)
        if then is not None:
            then(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    live.publish("containers", "volumes", "images", "disk", "networks")


def _sync_volumes(conn: sqlite3.Connection, volumes: list[tuple[dict, bool]], now: str) -> None:
    names = []
    for v, anonymous in volumes:
        names.append(v["Name"])
        fields = {
            "driver": v["Driver"],
            "mountpoint": v["Mountpoint"],
            "created": _db_value(parse_go_time(v["CreatedAt"])),
            "labels": _db_value(v["Labels"] or {}),
            "options": _db_value(v["Options"] or {}),
            "anonymous": anonymous,
            "synced_at": now,
        }
        cols = list(fields)
        updated = conn.execute(
            f"UPDATE {VOLUME_TABLE} SET {', '.join(f'{n} = ?' for n in cols)} WHERE name = ?",
            (*fields.values(), v["Name"]),
        ).rowcount
        if not updated:
            conn.execute(
                f"INSERT INTO {VOLUME_TABLE} (name, {', '.join(cols)}) "
                f"VALUES (?, {', '.join('?' for _ in cols)})",
                (v["Name"], *fields.values()),
            )
    conn.execute(
        f"DELETE FROM {VOLUME_TABLE} WHERE name NOT IN ({', '.join('?' for _ in names)})",
        names,
    )


def _has_table(conn: sqlite3.Connection, table: str) -> bool:
    """Whether ``table`` exists (an app the database was migrated for)."""
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    return found is not None


def _sync_networks(conn: sqlite3.Connection, rows: list[tuple[str, dict]], now: str) -> None:
    """``networks.mirror.sync_networks`` without Django (the fields: ``networks.rows``)."""
    ids = []
    for nid, fields in rows:
        ids.append(nid)
        fields = {**fields, "synced_at": now}
        cols = list(fields)
        values = [_db_value(v) for v in fields.values()]
        updated = conn.execute(
            f"UPDATE {NETWORK_TABLE} SET {', '.join(f'{n} = ?' for n in cols)} "
            "WHERE network_id = ?",
            (*values, nid),
        ).rowcount
        if not updated:
            conn.execute(
                f"INSERT INTO {NETWORK_TABLE} (network_id, {', '.join(cols)}) "
                f"VALUES (?, {', '.join('?' for _ in cols)})",
                (nid, *values),
            )
    conn.execute(
        f"DELETE FROM {NETWORK_TABLE} WHERE network_id NOT IN ({', '.join('?' for _ in ids)})",
        ids,
    )
