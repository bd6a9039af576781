"""Settings come from the environment and fail loudly; the runtime stays free of Django/Celery."""

from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from dockweb import settings as dockweb_settings

REPO = Path(__file__).resolve().parent.parent

# Importing one module in a fresh interpreter and failing if that dragged Django or Celery in.
CHECK = """
import importlib, sys
importlib.import_module(sys.argv[1])
loaded = sorted({m.split(".")[0] for m in sys.modules} & {"django", "celery", "kombu"})
assert not loaded, f"{sys.argv[1]} imports {', '.join(loaded)}"
"""


def runtime_modules() -> list[str]:
    root = REPO / "dockweb" / "runtime"
    modules = []
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules.append(".".join(parts))
    return modules


def import_in_subprocess(module: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, "-c", CHECK, module],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def run_settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Import dockweb.settings in a fresh interpreter with only ``env`` set for dockweb."""
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DOCKWEB_DATA", "DOCKWEB_ROOT", "SECRET_KEY", "DEBUG", "DATABASE_URL"}
    }
    code = (
        "from dockweb import settings as s; "
        "print(s.DATABASES['default']['NAME']); print(s.DOCKWEB_ROOT); print(s.DEBUG)"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**base, "DOCKWEB_DATA": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_finds_runtime_modules():
    modules = runtime_modules()
    assert "dockweb.runtime" in modules
    assert "dockweb.runtime.errors" in modules


@pytest.mark.parametrize("module", ["dockweb", *runtime_modules()])
def test_it_imports_runtime_without_django_or_celery(module):
    result = import_in_subprocess(module)
    assert result.returncode == 0, result.stderr


def test_it_notices_a_module_that_imports_django():
    # The check above must be able to fail: dockweb.settings imports Django.
    result = import_in_subprocess("dockweb.settings")
    assert result.returncode != 0
    assert "imports django" in result.stderr


def test_it_notices_a_module_that_imports_celery():
    result = import_in_subprocess("dockweb.celery")
    assert result.returncode != 0
    assert "imports celery" in result.stderr


@pytest.mark.parametrize("value, expected", [("true", True), ("1", True), ("no", False)])
def test_it_parses_booleans(monkeypatch, value, expected):
    monkeypatch.setenv("DOCKWEB_TEST_FLAG", value)
    assert dockweb_settings.env_bool("DOCKWEB_TEST_FLAG", not expected) is expected


def test_it_rejects_a_boolean_it_cannot_read(monkeypatch):
    monkeypatch.setenv("DOCKWEB_TEST_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="DOCKWEB_TEST_FLAG='maybe'"):
        dockweb_settings.env_bool("DOCKWEB_TEST_FLAG", False)


def test_it_rejects_a_relative_data_path(monkeypatch):
    monkeypatch.setenv("DOCKWEB_TEST_PATH", "var/data")
    with pytest.raises(ImproperlyConfigured, match="absolute path"):
        dockweb_settings.env_path("DOCKWEB_TEST_PATH", Path("/tmp"))


def test_it_reads_a_sqlite_url():
    db = dockweb_settings.database_from_url("sqlite:////srv/dockweb/db.sqlite3")
    assert db == {"ENGINE": "django.db.backends.sqlite3", "NAME": "/srv/dockweb/db.sqlite3"}


def test_it_reads_a_postgres_url(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: object() if name == "psycopg" else find_spec(name, *a),
    )
    db = dockweb_settings.database_from_url(
        "postgres://dock%40web:p%2Fss@db.local:5433/dockweb?sslmode=disable"
    )
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["USER"], db["PASSWORD"]) == ("dockweb", "dock@web", "p/ss")
    assert (db["HOST"], db["PORT"]) == ("db.local", "5433")
    assert db["OPTIONS"] == {"sslmode": "disable"}


def test_it_refuses_postgres_without_psycopg(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "psycopg" else find_spec(name, *a),
    )
    with pytest.raises(ImproperlyConfigured, match="psycopg is not installed"):
        dockweb_settings.database_from_url("postgres://u:p@localhost/dockweb")


def test_it_rejects_an_unknown_database_scheme():
    with pytest.raises(ImproperlyConfigured, match="unsupported scheme 'mysql'"):
        dockweb_settings.database_from_url("mysql://u:p@localhost/dockweb")


def test_it_persists_a_generated_secret_key(tmp_path):
    path = tmp_path / "secret_key"
    key = dockweb_settings.persistent_secret_key(path)
    assert len(key) >= 50
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert dockweb_settings.persistent_secret_key(path) == key


def test_it_puts_database_and_store_under_the_data_dir(tmp_path):
    result = run_settings(tmp_path)
    assert result.returncode == 0, result.stderr
    db_name, root, debug = result.stdout.split()
    assert db_name == str(tmp_path / "db.sqlite3")
    assert root == str(tmp_path / "store")
    assert debug == "False"
    assert (tmp_path / "secret_key").exists()


def test_it_stops_at_start_up_on_a_bad_value(tmp_path):
    result = run_settings(tmp_path, DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG='maybe': use true or false" in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DOCKWEB_LAYER_MAX_ENTRIES", "lots", "expected an integer"),
        ("DOCKWEB_LAYER_MAX_BYTES", "64G", "expected an integer"),
        ("DOCKWEB_LAYER_MAX_RATIO", "high", "expected a number"),
        ("DOCKWEB_LAYER_RATIO_FLOOR", "1.5", "expected an integer"),
        ("DOCKWEB_PROGRESS_INTERVAL", "nan", "expected a number"),
        ("DOCKWEB_BUILD_CONTEXT_LIMIT", "2GiB", "expected an integer"),
    ],
)
def test_it_refuses_a_bad_limit_or_interval_naming_its_variable(tmp_path, name, value, message):
    result = run_settings(tmp_path, **{name: value})
    assert result.returncode != 0
    assert f"{name}={value!r}: {message}" in result.stderr


def test_it_takes_the_layer_limits_defaults_from_the_runtime(tmp_path):
    from dockweb.runtime.limits import DEFAULT_LAYER_LIMITS

    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKWEB_LAYER_")}
    code = (
        "from dockweb import settings as s; print(s.DOCKWEB_LAYER_MAX_ENTRIES, "
        "s.DOCKWEB_LAYER_MAX_BYTES, s.DOCKWEB_LAYER_MAX_RATIO, s.DOCKWEB_LAYER_RATIO_FLOOR)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**env, "DOCKWEB_DATA": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    d = DEFAULT_LAYER_LIMITS
    assert result.stdout.split() == [
        str(d.max_entries),
        str(d.max_bytes),
        str(d.max_ratio),
        str(d.ratio_floor),
    ]
