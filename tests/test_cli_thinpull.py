"""`dockweb pull` as a client of the running `dockweb system service` (dockweb/cli/thinpull.py):
used when the service serves the command's store, with the direct path's output; never
when it serves another store, is off, or the command has options it cannot pass."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dockweb.runtime.store import Store
from tests.support import images as im
from tests.support.cli import cli_env, run_dockweb


@pytest.fixture(scope="module")
def pushed(registry):
    im.push_image(registry.host, "thin/app", "1", im.busybox_base())
    im.push_image(registry.host, "thin/app", "2", im.busybox_base())
    return f"{registry.host}/thin/app"


def _pull_actors(api) -> list[str]:
    db = Path(api.env["DOCKWEB_DATA"]) / "db.sqlite3"
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT actor FROM access_auditevent WHERE action = 'image.pull' ORDER BY id"
        ).fetchall()
    return [r[0] for r in rows]


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


def test_dockweb_pull_goes_through_the_service_that_serves_its_store(engine_api, pushed):
    ref = f"{pushed}:1"
    env = {**engine_api.env, "DOCKWEB_API_SOCKET": engine_api.host}
    before = _pull_actors(engine_api)
    out = run_dockweb(env, "pull", ref, check=True)
    assert _pull_actors(engine_api)[len(before) :] == [f"api:{_user()}"]  # the service's door
    lines = _lines(out.stdout)
    assert lines[0] == "1: Pulling from thin/app"
    assert lines[-3].startswith("Digest: sha256:")
    assert lines[-2:] == [f"Status: Downloaded newer image for {ref}", ref]
    assert any(line.endswith(": Pull complete") for line in lines)
    assert Store(engine_api.env["DOCKWEB_ROOT"]).lookup(ref)
    # pulled again: the same lines as the direct path prints
    thin = run_dockweb(env, "pull", ref, check=True)
    direct = run_dockweb({**env, "DOCKWEB_PULL_SERVICE": "0"}, "pull", ref, check=True)
    assert _lines(thin.stdout) == _lines(direct.stdout)
    assert _lines(thin.stdout)[-2] == f"Status: Image is up to date for {ref}"
    assert _pull_actors(engine_api)[-2:] == [f"api:{_user()}", f"cli:{_user()}"]
    # -q: the reference only
    quiet = run_dockweb(env, "pull", "-q", f"{pushed}:2", check=True)
    assert _lines(quiet.stdout) == [f"{pushed}:2"]
    assert _pull_actors(engine_api)[-1] == f"api:{_user()}"


def test_errors_as_the_direct_path_prints_them(engine_api, pushed):
    env = {**engine_api.env, "DOCKWEB_API_SOCKET": engine_api.host}
    missing = f"{pushed.rsplit('/', 1)[0]}/thin/nope:1"
    thin = run_dockweb(env, "pull", missing)
    direct = run_dockweb({**env, "DOCKWEB_PULL_SERVICE": "off"}, "pull", missing)
    assert thin.returncode == direct.returncode == 1
    assert thin.stderr.startswith("Error response from daemon: manifest for ")
    assert thin.stderr == direct.stderr


def test_never_for_another_store_or_options_it_cannot_pass(engine_api, pushed, tmp_path):
    ref = f"{pushed}:1"
    before = _pull_actors(engine_api)
    # another store (its own DOCKWEB_ROOT and database): done by the command itself
    other = cli_env(tmp_path, DOCKWEB_API_SOCKET=engine_api.host)
    run_dockweb(other, "pull", "-q", ref, check=True)
    assert Store(str(tmp_path / "store")).lookup(ref)
    # --all-tags: the direct path refuses it, with its message
    env = {**engine_api.env, "DOCKWEB_API_SOCKET": engine_api.host}
    refused = run_dockweb(env, "pull", "--all-tags", pushed)
    assert refused.returncode != 0 and "--all-tags is not supported" in refused.stderr
    # no service on the socket named: the direct path
    gone = {**env, "DOCKWEB_API_SOCKET": f"unix://{tmp_path / 'none.sock'}"}
    run_dockweb(gone, "pull", "-q", ref, check=True)
    assert _pull_actors(engine_api)[len(before) :] == [f"cli:{_user()}"]


def _user() -> str:
    import getpass

    return getpass.getuser()
