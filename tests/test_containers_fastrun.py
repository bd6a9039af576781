"""`dockweb run` without Django (dockweb/cli/fastrun.py): same rows as the ORM path, --rm gone
when the command returns, a stale schema stamp sends it back through Django."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from tests.support import images as im

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


@pytest.fixture
def cli(tmp_path):
    env = dict(
        os.environ, DOCKWEB_ROOT=str(tmp_path / "store"), DOCKWEB_DATA=str(tmp_path / "data")
    )
    env.pop("DATABASE_URL", None)

    def run(*args, check=True):
        proc = subprocess.run(
            [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    run.db = tmp_path / "data" / "db.sqlite3"
    run.env = env
    yield run
    ids = run("-m", "dockweb.cli", "ps", "-aq", "--no-trunc", check=False).stdout.split()
    if ids:
        run("-m", "dockweb.cli", "rm", "-f", *ids, check=False)


@pytest.fixture(scope="module")
def busybox(registry):
    im.push_image(registry.host, "fast/busybox", "1", im.busybox_base())
    return f"{registry.host}/fast/busybox:1"


def rows(db, table="containers_container"):
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [
            {k: r[k] for k in r.keys() if k not in ("id", "synced_at")}
            for r in conn.execute(f"SELECT * FROM {table} ORDER BY 2")
        ]
    finally:
        conn.close()


@needs_root
def test_it_writes_the_rows_the_orm_path_writes(cli, busybox):
    cli("-m", "dockweb.cli", "pull", "-q", busybox)  # migrates and stamps the database
    cid = cli(
        "-m", "dockweb.cli", "run", "-d", "--name", "fast", "-v", "/anon", "-e", "A=1", busybox,
        "sleep", "30",
    ).stdout.strip()
    fast = rows(cli.db)
    fast_volumes = rows(cli.db, "containers_volume")
    assert [r["container_id"] for r in fast] == [cid] and fast[0]["status"] == "running"
    assert len(fast_volumes) == 1
    cli("manage.py", "container_exited", cid)  # the same container, mirrored by the ORM
    assert rows(cli.db) == fast
    assert rows(cli.db, "containers_volume") == fast_volumes


@needs_root
def test_it_leaves_neither_container_nor_row_after_rm(cli, busybox):
    cli("-m", "dockweb.cli", "pull", "-q", busybox)
    proc = cli("-m", "dockweb.cli", "run", "--rm", busybox, "sh", "-c", "echo out; exit 4",
               check=False)
    assert (proc.returncode, proc.stdout) == (4, "out\n")
    assert cli("-m", "dockweb.cli", "ps", "-aq").stdout == ""
    assert rows(cli.db) == []


@needs_root
def test_it_takes_the_django_path_when_the_stamp_is_stale(cli, busybox):
    cli("-m", "dockweb.cli", "pull", "-q", busybox)
    stamp = cli.db.with_name(cli.db.name + ".schema")
    stamp.write_text("stale\n")
    cli.env["DOCKWEB_RUNNER"] = "0"  # -X importtime shows this process's imports
    proc = cli("-X", "importtime", "-m", "dockweb.cli", "run", "--rm", busybox, "true")
    assert "django.db.migrations" in proc.stderr  # checked through Django again
    assert stamp.read_text() != "stale\n"
    proc = cli("-X", "importtime", "-m", "dockweb.cli", "run", "--rm", busybox, "true")
    assert "django.db.migrations" not in proc.stderr


@needs_root
def test_it_audits_a_fast_run_as_the_orm_path_does(cli, busybox):
    cli("-m", "dockweb.cli", "pull", "-q", busybox)
    cli("-m", "dockweb.cli", "run", "--rm", busybox, "true")
    events = rows(cli.db, "access_auditevent")
    run = [e for e in events if e["action"] == "container.run"]
    assert len(run) == 1
    assert run[0]["actor"].startswith("cli:")
    assert run[0]["target"] == f"run --rm {busybox} true"
    # the ORM reads the row the fast path wrote
    code = (
        "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'dockweb.settings');"
        "django.setup(); from access.models import AuditEvent;"
        "e = AuditEvent.objects.get(action='container.run'); print(e.detail['exit'], e.at.year)"
    )
    out = cli("-c", code).stdout.split()
    assert out[0] == "0" and int(out[1]) >= 2026


@pytest.mark.parametrize(
    "env",
    [
        {"DOCKWEB_DATA": "{tmp}/data"},
        {"DOCKWEB_DATA": "{tmp}/data/", "DOCKWEB_ROOT": "{tmp}/elsewhere/store"},
        {"DOCKWEB_DATA": "~/data", "HOME": "{tmp}"},
        {"DOCKWEB_DATA": "{tmp}/data", "DATABASE_URL": "sqlite:///{tmp}/other/db.sqlite3"},
    ],
)
def test_it_finds_the_store_and_database_the_settings_name(tmp_path, env):
    env = {k: v.format(tmp=tmp_path) for k, v in env.items()}
    code = (
        "import json, dockweb.settings as s; from dockweb import fastdb;"
        "from dockweb.cli import schema;"
        "print(json.dumps([fastdb.locations(), [str(s.DOCKWEB_ROOT), schema.sqlite_path(s)]]))"
    )
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DOCKWEB_ROOT")}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**base, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fast, settings = json.loads(out)
    assert [os.path.normpath(p) for p in fast] == [os.path.normpath(p) for p in settings]


def test_it_leaves_other_databases_to_the_settings():
    from dockweb import fastdb

    assert fastdb.locations({"DATABASE_URL": "postgres://u@h/db"}) is None
    assert fastdb.locations({"DJANGO_SETTINGS_MODULE": "other.settings"}) is None
    assert fastdb.locations({"DOCKWEB_DATA": "relative/dir"}) is None
