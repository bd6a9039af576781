"""Shared fixtures: a real registry (Debian's docker-registry), a Celery worker, cleanup, the
pages' signed-in user and client, the web's store, a container manager and the `dockweb`
command."""

from __future__ import annotations

import pytest

from tests.support.cli import cli_env, run_dockweb
from tests.support.containers import managed
from tests.support.registry import RegistryServer

PASSWORD = "a-long-test-password-42"


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """A plain-HTTP registry on 127.0.0.1, no auth, shared by the whole session."""
    server = RegistryServer(tmp_path_factory.mktemp("registry"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def store(settings, tmp_path):
    """The store the web's services use (``images.services.get_store()``), fresh under
    tmp_path: ``settings.DOCKWEB_ROOT`` names it. A file whose ``store`` is another one
    defines its own."""
    from images import services

    settings.DOCKWEB_ROOT = tmp_path / "store"
    return services.get_store()


@pytest.fixture(scope="module")
def manager(store):
    """A ContainerManager for the file's own module-scoped ``store``; every container it knows
    is removed, with its anonymous volumes, after the file's last test."""
    yield from managed(store)


@pytest.fixture
def dockweb(tmp_path):
    """``dockweb <args>`` (tests.support.cli.run_dockweb) on a store and database under
    tmp_path (store/, data/); a non-zero exit fails the test unless ``check=False``."""
    env = cli_env(tmp_path)

    def run(*args, check=True, **kw):
        return run_dockweb(env, *args, check=check, **kw)

    return run


@pytest.fixture(scope="module")
def engine_api(tmp_path_factory):
    """``dockweb system service`` on a socket, store and database of the test file's own
    (tests.support.engineapi.EngineApi: ``.docker(...)`` runs Debian's docker CLI against
    it, ``.client()`` is docker-py's); every container left is removed at the end."""
    from tests.support.engineapi import engine_api as start

    yield from start(tmp_path_factory.mktemp("engine-api"))


@pytest.fixture(scope="session", autouse=True)
def runner_socket():
    """The run's own `dockweb run` runner (dockweb/cli/runner.py): a socket of its own, so
    the tests never use, or leave behind, the machine's; stopped at the end of the run."""
    import os
    import shutil
    import tempfile

    from dockweb.cli import runner

    # a short directory: a Unix socket's path is at most 107 bytes
    path = os.path.join(tempfile.mkdtemp(prefix="dwr-"), "runner.sock")
    old = os.environ.get("DOCKWEB_RUNNER_SOCKET")
    os.environ["DOCKWEB_RUNNER_SOCKET"] = path
    yield path
    runner.stop(path)
    shutil.rmtree(os.path.dirname(path), ignore_errors=True)
    if old is None:
        os.environ.pop("DOCKWEB_RUNNER_SOCKET", None)
    else:
        os.environ["DOCKWEB_RUNNER_SOCKET"] = old


@pytest.fixture
def live_worker(transactional_db, settings, tmp_path):
    """A real Celery worker process (tests.support.worker) for this test, stopped after it.

    It shares the test database (a SQLite file: ``TEST`` in dockweb/settings.py), the
    broker of the run (``CELERY_BROKER_URL``, a private Redis started by scripts/test) and a
    fresh store, which ``settings.DOCKWEB_ROOT`` names for the test's side too. Rows the
    test writes are committed (``transactional_db``), so the worker sees them; pages are
    served with ``live_server``. The default queue is emptied first: a message another test
    left there would name one of its own rows.
    """
    import os

    import redis
    from django.db import connection

    from tests.support.worker import DEFAULT_QUEUES, CeleryWorker

    if os.geteuid() != 0:
        pytest.skip("the worker unpacks layers with their owners: run the tests as root")
    broker = os.environ.get("CELERY_BROKER_URL")
    if not broker:
        pytest.skip("CELERY_BROKER_URL is not set: run the tests with scripts/test")
    db_path = str(connection.settings_dict["NAME"])
    if connection.vendor != "sqlite" or "memory" in db_path or not os.path.isabs(db_path):
        pytest.skip(f"the worker needs the test database in a file, not {db_path!r}")
    redis.Redis.from_url(broker).delete(*DEFAULT_QUEUES)
    settings.DOCKWEB_ROOT = tmp_path / "store"
    worker = CeleryWorker(
        db_path=db_path,
        store_root=settings.DOCKWEB_ROOT,
        data_dir=settings.DOCKWEB_DATA,
        broker_url=broker,
        log_path=tmp_path / "worker.log",
    )
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def role() -> str:
    """The role ``user`` has: a file that signs in names it in a ``role`` fixture of its own."""
    pytest.fail("this file signs in (`user` or `client`): name the user's role in a `role` fixture")


@pytest.fixture
def user(django_user_model, role):
    """alice, with ``role`` (access/roles.py)."""
    from access.roles import set_role

    user = django_user_model.objects.create_user("alice", password=PASSWORD)
    set_role(user, role)
    return user


@pytest.fixture
def client(user):
    """Django's test Client signed in as ``user``. It replaces pytest-django's anonymous
    ``client``: a file that wants that one defines its own."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def _unmount_what_a_test_left(request):
    """Detach overlay mounts a test left under its tmp_path (a container it created and did
    not remove keeps its rootfs mounted), so later runs can delete the directories."""
    if "tmp_path" not in request.fixturenames:
        yield
        return
    from tests.support.engineapi import unmount_under

    base = str(request.getfixturevalue("tmp_path")) + "/"  # set up before: torn down after
    yield
    unmount_under(base)


@pytest.fixture(autouse=True)
def _no_language_left_behind():
    """A request with Accept-Language (or a language cookie) leaves its language active in
    the thread after the test client returns (LocaleMiddleware activates it and never
    deactivates): reset it so that a later test reads the default language's words."""
    yield
    from django.utils import translation

    translation.deactivate()
