"""`dockweb pull` without Django (dockweb/cli/fastpull.py): with no service running and a
migrated SQLite database, the command pulls with the runtime alone, prints what the
ordinary path prints, writes the same audit row, and the database mirror and the explorer's
analysis follow in a process of their own (``manage.py image_pulled``)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dockweb.runtime.store import Store
from tests.support import images as im
from tests.support.cli import REPO, cli_env, run_dockweb

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root")

# the ordinary path, for comparison: a setting a pull reads, set to its default
ORDINARY = {"DOCKWEB_MAX_CONCURRENT_DOWNLOADS": "3"}


@pytest.fixture(scope="module")
def pushed(registry):
    image = im.busybox_base()
    im.push_image(registry.host, "fast/app", "1", image)
    return f"{registry.host}/fast/app:1", image


def _env(tmp_path: Path, name: str) -> dict[str, str]:
    # no service: the socket named does not exist
    return cli_env(
        tmp_path,
        store=f"{name}-store",
        data=tmp_path / f"{name}-data",
        DOCKWEB_API_SOCKET=f"unix://{tmp_path}/none.sock",
    )


def _migrated(env: dict[str, str]) -> None:
    """A database migrated and stamped, as any earlier command of the ordinary path leaves
    it (dockweb/cli/schema.py): the fast paths need it."""
    run_dockweb(env, "images", "-q", check=True)


def _db(env) -> sqlite3.Connection:
    return sqlite3.connect(Path(env["DOCKWEB_DATA"]) / "db.sqlite3")


def _wait_for(env, query: str, args=(), timeout: float = 60.0) -> list:
    deadline = time.monotonic() + timeout
    while True:
        with _db(env) as conn:
            rows = conn.execute(query, args).fetchall()
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def _audit(env) -> list[tuple]:
    with _db(env) as conn:
        return conn.execute(
            "SELECT user_id, actor, action, target, detail, remote_addr FROM access_auditevent"
            " WHERE action = 'image.pull' ORDER BY id"
        ).fetchall()


def test_a_pull_without_django_prints_and_records_as_the_ordinary_path(tmp_path, pushed):
    ref, image = pushed
    module_env = _env(tmp_path, "module")
    _migrated(module_env)
    # the module itself, in a process of its own: it never imports Django
    code = (
        "import json, sys; from dockweb.cli import fastpull;"
        f"code = fastpull.pull(['-q', {ref!r}], ['pull', '-q', {ref!r}]);"
        "print(json.dumps([code, any(m.split('.')[0] == 'django' for m in sys.modules)]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=module_env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [ref, "[0, false]"]
    assert Store(module_env["DOCKWEB_ROOT"]).lookup(ref).id == image.image_id
    assert [row[2:5] for row in _audit(module_env)] == [
        ("image.pull", f"pull -q {ref}", '{"exit": 0}')
    ]

    # through the command: the lines of the ordinary path, afresh and pulled again
    fast_env, slow_env = _env(tmp_path, "fast"), {**_env(tmp_path, "slow"), **ORDINARY}
    _migrated(fast_env)
    _migrated(slow_env)
    outputs = []
    for args in (["pull", ref], ["image", "pull", ref]):
        fast = run_dockweb(fast_env, *args, check=True)
        slow = run_dockweb(slow_env, *args, check=True)
        assert fast.stdout == slow.stdout
        outputs.append(fast.stdout.splitlines())
    assert outputs[0][-2] == f"Status: Downloaded newer image for {ref}"
    assert outputs[1][-2] == f"Status: Image is up to date for {ref}"
    assert _audit(fast_env) == _audit(slow_env)
    assert [row[2:4] for row in _audit(fast_env)] == [
        ("image.pull", f"pull {ref}"),
        ("image.pull", f"image pull {ref}"),
    ]

    # the dashboard's rows follow, written by `manage.py image_pulled`
    for env in (module_env, fast_env, slow_env):
        found = _wait_for(env, "SELECT id FROM images_image WHERE image_id = ?", (image.image_id,))
        assert found, "the pulled image never reached the database"
        assert _wait_for(
            env,
            "SELECT a.id FROM images_imageanalysis a JOIN images_image i ON a.image_id = i.id"
            " WHERE i.image_id = ?",
            (image.image_id,),
        ), "the pulled image was never analyzed"
        with _db(env) as conn:
            tags = conn.execute(
                "SELECT p.name, r.tag FROM images_reference r"
                " JOIN images_repository p ON r.repository_id = p.id"
            ).fetchall()
        assert tuple(ref.rsplit(":", 1)) in tags


def test_a_failed_pull_says_what_the_ordinary_path_says(tmp_path, registry, pushed):
    fast_env, slow_env = _env(tmp_path, "fast"), {**_env(tmp_path, "slow"), **ORDINARY}
    _migrated(fast_env)
    _migrated(slow_env)
    missing = f"{registry.host}/fast/app:nope"
    fast = run_dockweb(fast_env, "pull", missing)
    slow = run_dockweb(slow_env, "pull", missing)
    assert (fast.returncode, fast.stdout, fast.stderr) == (1, "", slow.stderr)
    assert slow.returncode == 1 and "manifest unknown" in fast.stderr
    assert [row[4] for row in _audit(fast_env)] == ['{"exit": 1}']


def test_it_leaves_what_it_cannot_do_to_the_ordinary_path(tmp_path, registry, pushed):
    ref, _ = pushed
    env = _env(tmp_path, "fresh")
    # a database never migrated: the ordinary path migrates it (and says nothing of it)
    out = run_dockweb(env, "pull", "-q", ref, check=True)
    assert out.stdout == ref + "\n"
    # a name the parser refuses, and --all-tags: the ordinary path's messages
    bad = run_dockweb(env, "pull", "UPPER/case")
    assert bad.returncode == 1
    assert "invalid reference format: repository name must be lowercase" in bad.stderr
    all_tags = run_dockweb(env, "pull", "--all-tags", ref)
    assert all_tags.returncode != 0 and "--all-tags" in all_tags.stderr


def test_an_up_to_date_pull_mirrors_what_the_database_lacks(tmp_path, pushed):
    ref, image = pushed
    env = _env(tmp_path, "fast")
    _migrated(env)
    run_dockweb(env, "pull", "-q", ref, check=True)
    query = (
        "SELECT r.digest FROM images_reference r JOIN images_image i ON r.image_id = i.id"
        " JOIN images_imageanalysis a ON a.image_id = i.id WHERE r.digest != ''"
    )
    assert _wait_for(env, query), "the pull was never mirrored"
    with _db(env) as conn:  # as if a mirror had been lost
        conn.execute("DELETE FROM images_reference WHERE digest != ''")
    out = run_dockweb(env, "pull", ref, check=True)
    assert out.stdout.splitlines()[-2] == f"Status: Image is up to date for {ref}"
    assert _wait_for(env, query), "the up-to-date pull left the database behind the store"
