"""The `dockweb` command as a person runs it: ``python -m dockweb.cli`` from the repository's
root, on a store and database of the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli_env(
    tmp_path: Path, *, store: str = "store", data: Path | None = None, **extra: str
) -> dict[str, str]:
    """``os.environ`` with ``DOCKWEB_ROOT`` at ``tmp_path/store`` and ``DOCKWEB_DATA`` at
    ``data`` (``tmp_path/data`` when None), plus ``extra``."""
    return dict(
        os.environ,
        DOCKWEB_ROOT=str(tmp_path / store),
        DOCKWEB_DATA=str(data or tmp_path / "data"),
        **extra,
    )


def run_dockweb(
    env: Mapping[str, str], *args: str, check: bool = False, timeout: float = 120, **kw: Any
) -> subprocess.CompletedProcess:
    """``dockweb <args>`` with ``env``; stdout and stderr are captured, as text unless
    ``text=False``; other keywords go to ``subprocess.run``. With ``check``, a non-zero exit
    raises AssertionError naming the command and showing its output."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    proc = subprocess.run(
        [sys.executable, "-m", "dockweb.cli", *args], cwd=REPO, env=env, timeout=timeout, **kw
    )
    if check and proc.returncode != 0:
        command = " ".join(map(str, args))
        raise AssertionError(f"dockweb {command} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def spawn_dockweb(env: Mapping[str, str], *args: str, **kw: Any) -> subprocess.Popen:
    """``dockweb <args>`` started with ``env`` and not waited for; keywords go to
    ``subprocess.Popen``."""
    return subprocess.Popen([sys.executable, "-m", "dockweb.cli", *args], cwd=REPO, env=env, **kw)
