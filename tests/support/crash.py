"""A child Python that works on the test database and store until it kills itself with
SIGKILL at a crash point (dockweb/runtime/crashpoint.py), for the crash-safety tests."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.db import connection

from tests.support.cli import REPO


def kill_child_at(settings, code: str, args: list[str], crash_at: str, **env: str) -> None:
    """Run ``python -c code *args`` with DOCKWEB_CRASH_AT=``crash_at`` (and ``env``), on the
    test database and settings' store; fail unless it died there, by SIGKILL."""
    db = str(connection.settings_dict["NAME"])
    if connection.vendor != "sqlite" or "memory" in db:
        pytest.skip("the child process needs the test database in a file")
    child_env = dict(
        os.environ,
        DATABASE_URL=f"sqlite:///{db}",
        DOCKWEB_ROOT=str(settings.DOCKWEB_ROOT),
        DOCKWEB_DATA=str(settings.DOCKWEB_DATA),
        DOCKWEB_CRASH_AT=crash_at,
        **env,
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -9, f"{crash_at} was never reached:\n{proc.stderr[-3000:]}"
