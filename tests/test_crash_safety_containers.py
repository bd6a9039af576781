"""SIGKILL at chosen points of a container's creation and start, then the repair.

The container is run as the dashboard's worker runs it (containers.services.run_operation on
a RUN row, in a child process; once by a real Celery worker) and as the CLI runs it
(`dockweb run -d`, the Django-free fast path), with ``DOCKWEB_CRASH_AT`` naming one of the
runtime's ``crashpoint()`` hooks. A hook in the supervisor kills its starter too (it waits
for the supervisor's answer), so every point kills the worker or the CLI. Then the repair
runs: the worker's start-up (containers.tasks.recover_after_restart) or the CLI's next
`run` (ContainerManager.reconcile, then the mirror). The tests check: a creation cut short
left nothing (directory, mounts, runtime state, anonymous volumes); a container that exists
is Running only while its supervisor and process live, else Created or Exited; no process
of a crashed start survives; a half-seeded volume is emptied and seeded completely by the
next container; no temporary file is left; the database mirrors the store; the image is
still in use (rmi gets the conflict); a new container from the image runs, and removing
every container, then the image, works.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time

import pytest
from django.db import connection

from containers.models import Container, ContainerOperation, Volume
from dockweb.runtime.containers import ContainerManager, ContainerSpec, Status
from dockweb.runtime.errors import Conflict
from tests.support import images as im
from tests.support.cli import cli_env, run_dockweb
from tests.support.crash import kill_child_at
from tests.support.procs import running as pid_running

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root"),
    pytest.mark.django_db(transaction=True),
]


# Where the start is killed, and what the crashed container is after the repair: "gone"
# (its creation was cut short), or its status.
POINTS = {
    # creation (ContainerManager._record, under the store's lock)
    "container.create.dir": "gone",  # directory (and create.json) made
    "container.create.volumes": "gone",  # named and anonymous volumes made
    "container.create.layers": "gone",  # writable layer, work and init layer made
    "container.create.state": "gone",  # all made but the record (state.json: at start)
    "container.atomic_write#1": "gone",  # the record in its temporary file
    "container.create.recorded": "created",  # created; nothing mirrored
    # start (ContainerManager.start, _prepare, _spawn_shim; then the supervisor)
    "container.start.mounted": "created",  # rootfs mounted
    "volume.seed.copied": "created",  # named volume's content copied, owner and mode not set
    "container.start.volumes": "created",  # volumes seeded
    "container.atomic_write#2": "created",  # the bundle's config.json in its temporary file
    "container.start.config": "created",  # bundle written, no supervisor yet
    "container.start.spawned": "running",  # supervisor forked, its answer never read
    "shim.locked": "created",  # supervisor holds shim.lock; runtime not run
    "shim.created": "created",  # the runtime runs the process; the state says created
    "shim.running": "exited",  # the state says running; the starter not answered
    "container.start.answered": "running",  # running; nothing mirrored
}

CHILD = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dockweb.settings")
import django
django.setup()
from containers import services
services.run_operation(int(sys.argv[1]))
"""


@pytest.fixture(scope="module")
def image(registry):
    """busybox, a /seeded directory a named volume gets (owner 1000, mode 0750) and an image
    VOLUME /anon with content (an anonymous volume, seeded too)."""
    data = im.Layer(
        [
            im.dir_("seeded", mode=0o750, uid=1000, gid=1000),
            im.file("seeded/hello", b"hello\n", uid=1000, gid=1000),
            im.dir_("anon"),
            im.file("anon/a", b"a\n"),
        ]
    )
    img = im.Image([im.busybox_layer(), data], {"Cmd": ["sleep", "300"], "Volumes": {"/anon": {}}})
    im.push_image(registry.host, "crash/containers", "1", img)
    return f"{registry.host}/crash/containers:1"


# -- what a repaired store looks like -------------------------------------------------------


def _mounts_under(root: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(root + "/")]


def _init_pids(mgr: ContainerManager) -> dict[str, int]:
    """The container processes the runtime started, by container (``init.pid``)."""
    pids = {}
    for cid in os.listdir(mgr.dir):
        try:
            with open(os.path.join(mgr.dir, cid, "init.pid")) as f:
                pids[cid] = int(f.read().strip())
        except (FileNotFoundError, ValueError):
            pass
    return pids


def settle(mgr: ContainerManager, point: str) -> None:
    """Wait for the supervisor, which outlives its killed starter: one killed at its own
    point dies right after the starter; one left alone goes on until it has written its
    state (running). The checks then see the start as it ends."""
    if not point.startswith("shim.") and POINTS[point] != "running":
        return
    (cid,) = os.listdir(mgr.dir)
    deadline = time.monotonic() + 60
    while not (
        mgr.read_state(cid).status is Status.RUNNING
        if POINTS[point] == "running"
        else not mgr.shim_alive(cid)
    ):
        assert time.monotonic() < deadline, "the supervisor never got there"
        time.sleep(0.02)


def assert_repaired(mgr: ContainerManager, started: dict[str, int]) -> None:
    """Nothing partial, temporary, unsupervised or orphaned in sight."""
    ids = sorted(mgr._ids())
    assert sorted(os.listdir(mgr.dir)) == ids, "a creation or removal left a directory"
    containers = mgr.list(all=True)
    for c in containers:
        cdir = mgr.cdir(c.id)
        names = os.listdir(cdir) + os.listdir(os.path.join(cdir, "bundle"))
        assert [n for n in names if n == "create.json" or re.search(r"\.json\.\d+\.", n)] == []
        if c.status is Status.RUNNING:
            assert mgr.shim_alive(c.id) and pid_running(c.state.pid), c.id
        else:
            assert c.status in (Status.CREATED, Status.EXITED), c.status
            assert not mgr.shim_alive(c.id)
    running = {c.id for c in containers if c.status is Status.RUNNING}
    for cid, pid in started.items():
        if cid not in running:
            assert not pid_running(pid), f"process {pid} of {cid[:12]} survived its start's crash"
    runtime = os.listdir(mgr.runtime_root) if os.path.isdir(mgr.runtime_root) else []
    assert set(runtime) == running
    rootfs = {os.path.join(mgr.cdir(cid), "rootfs") for cid in ids}
    assert set(_mounts_under(mgr.root)) <= rootfs
    assert mgr.store.scratch_entries() == []
    for name in os.listdir(mgr.volumes.dir):
        assert not name.startswith("."), name
        assert not os.path.exists(os.path.join(mgr.volumes.dir, name, "seeding")), name
    anonymous = {v.name for v in mgr.volumes.list() if v.anonymous}
    assert anonymous == {m["name"] for c in containers for m in c.mounts if m["anonymous"]}
    for link in os.listdir(mgr.store.links_dir):
        assert os.path.exists(os.path.join(mgr.store.links_dir, link)), f"dangling link {link}"


def assert_outcome(mgr: ContainerManager, expected: str) -> None:
    crashed = [c for c in mgr.list(all=True) if c.name == "crashed"]
    if expected == "gone":
        assert crashed == []
    else:
        assert [c.status.value for c in crashed] == [expected]


def assert_seeded_or_empty(mgr: ContainerManager) -> None:
    """The named volume, if made, is seeded completely (content, owner, mode) or empty."""
    if not mgr.volumes.exists("crashvol"):
        return
    data = mgr.volumes.get("crashvol").mountpoint
    if os.listdir(data):
        assert_seeded(mgr)


def assert_seeded(mgr: ContainerManager) -> None:
    data = mgr.volumes.get("crashvol").mountpoint
    assert os.listdir(data) == ["hello"]
    with open(os.path.join(data, "hello")) as f:
        assert f.read() == "hello\n"
    st = os.stat(data)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000, 1000, 0o750)


# -- the worker -----------------------------------------------------------------------------


@pytest.fixture
def manager(settings, tmp_path):
    from containers import services

    settings.DOCKWEB_ROOT = tmp_path / "store"
    return services.get_manager()


def run_op(image: str, name: str) -> ContainerOperation:
    return ContainerOperation.objects.create(
        kind=ContainerOperation.Kind.RUN,
        args={"image": image, "cmd": None, "name": name, "volumes": ["crashvol:/seeded"]},
    )


def run_child(settings, op_id: int, crash_at: str) -> None:
    kill_child_at(settings, CHILD, [str(op_id)], crash_at)


def assert_mirrored(mgr: ContainerManager) -> None:
    rows = dict(Container.objects.values_list("container_id", "status"))
    assert rows == {c.id: c.status.value for c in mgr.list(all=True)}
    volumes = set(Volume.objects.values_list("name", flat=True))
    assert volumes == {v.name for v in mgr.volumes.list()}


def assert_recovered(op, mgr: ContainerManager, point: str, started: dict[str, int]) -> None:
    """The repair after a crash at ``point``: the run's operation failed as abandoned, the
    container as POINTS[point] says, every container repaired, the volume seeded or empty
    and the database mirroring the store."""
    from containers import services

    op.refresh_from_db()
    assert (op.status, op.error) == ("failed", services.OPERATION_ABANDONED)
    assert_outcome(mgr, POINTS[point])
    assert_repaired(mgr, started)
    assert_seeded_or_empty(mgr)
    assert_mirrored(mgr)


def check_afterwards(mgr: ContainerManager, image: str) -> None:
    """A new container from the image runs (and seeds the named volume if it was not);
    the image is in use; every container, then the image, can be removed."""
    from containers import services
    from images import services as image_services

    op = run_op(image, "after")
    services.run_operation(op.id)
    op.refresh_from_db()
    assert (op.status, op.error) == ("done", "")
    assert mgr.get("after").status is Status.RUNNING
    assert_seeded(mgr)
    assert_mirrored(mgr)
    with pytest.raises(Conflict):
        image_services.remove_image(image)
    for c in mgr.list(all=True):
        services.remove_container(c.id, force=True, volumes=True)
    assert mgr.list(all=True) == []
    records = image_services.remove_image(image)
    assert any(kind == "Deleted" for kind, _ in records)
    assert_repaired(mgr, {})
    assert_mirrored(mgr)
    assert [v.name for v in mgr.volumes.list()] == ["crashvol"]  # named volumes stay


@pytest.mark.parametrize("point", POINTS)
def test_a_worker_killed_starting_a_container_recovers(settings, manager, image, point):
    from containers.tasks import recover_after_restart
    from images import services as image_services

    image_services.pull_image(image)
    op = run_op(image, "crashed")
    run_child(settings, op.id, point)
    settle(manager, point)
    started = _init_pids(manager)

    recover_after_restart()

    assert_recovered(op, manager, point, started)
    check_afterwards(manager, image)


@pytest.mark.parametrize("point", ["container.create.volumes", "shim.created"])
def test_a_celery_worker_killed_starting_a_container_is_repaired_at_its_restart(
    settings, tmp_path, image, point
):
    """The real thing: the page's run queued, the worker dies at ``point``, a new worker's
    start-up (worker_ready) repairs before it logs "ready."."""
    import redis

    from containers import services
    from images import services as image_services
    from tests.support.worker import DEFAULT_QUEUES, CeleryWorker

    broker = os.environ.get("CELERY_BROKER_URL")
    if not broker:
        pytest.skip("CELERY_BROKER_URL is not set: run the tests with scripts/test")
    db = str(connection.settings_dict["NAME"])
    if connection.vendor != "sqlite" or "memory" in db:
        pytest.skip("the worker needs the test database in a file")
    redis.Redis.from_url(broker).delete(*DEFAULT_QUEUES)
    settings.DOCKWEB_ROOT = tmp_path / "store"
    mgr = services.get_manager()
    image_services.pull_image(image)

    def worker(name: str, **env) -> CeleryWorker:
        return CeleryWorker(
            db_path=db,
            store_root=settings.DOCKWEB_ROOT,
            data_dir=settings.DOCKWEB_DATA,
            broker_url=broker,
            log_path=tmp_path / f"{name}.log",
            extra_env=env,
        )

    crashing = worker("crashing", DOCKWEB_CRASH_AT=point).start()
    op = services.start_run(image, None, name="crashed", volumes=["crashvol:/seeded"])
    assert crashing.wait() == -9, crashing.log_text()[-3000:]
    settle(mgr, point)
    started = _init_pids(mgr)

    with worker("restarted"):
        assert_recovered(op, mgr, point, started)
    check_afterwards(mgr, image)


# -- the CLI --------------------------------------------------------------------------------


@pytest.fixture
def pulled(manager, image):
    from dockweb.runtime.pull import pull
    from dockweb.runtime.registry import RegistryClient

    pull(manager.store, RegistryClient(), image)
    return image


def test_a_container_is_created_without_a_state_which_reads_as_created(manager, pulled):
    c = manager.create(ContainerSpec(image=pulled, cmd=["true"]))
    assert not os.path.exists(os.path.join(manager.cdir(c.id), "state.json"))
    assert manager.get(c.id).status is Status.CREATED


def test_a_state_a_power_cut_left_empty_reads_as_exited_255(manager, pulled):
    # running, removing and an --rm container's exit are written without fsync
    c = manager.create(ContainerSpec(image=pulled, cmd=["true"]))
    open(os.path.join(manager.cdir(c.id), "state.json"), "w").close()
    st = manager.get(c.id).state
    assert (st.status, st.exit_code) == (Status.EXITED, 255)


def test_an_rm_containers_record_a_power_cut_left_empty_is_a_creation_cut_short(manager, pulled):
    # an --rm container's record is written without fsync: renamed into place, then lost
    c = manager.create(ContainerSpec(image=pulled, cmd=["true"], auto_remove=True))
    open(os.path.join(manager.cdir(c.id), "container.json"), "w").close()
    assert c.id not in [x.id for x in manager.list(all=True)]
    assert c.id in manager.reconcile()["removed"]
    assert not os.path.exists(manager.cdir(c.id))


@pytest.fixture
def cli(tmp_path):
    """`dockweb` on its own store and database (DOCKWEB_DATA), as a person runs it."""
    env = cli_env(tmp_path)
    env.pop("DATABASE_URL", None)
    env.pop("DOCKWEB_CRASH_AT", None)

    def run(*args, crash_at: str = ""):
        return run_dockweb(dict(env, DOCKWEB_CRASH_AT=crash_at) if crash_at else env, *args)

    run.root = str(tmp_path / "store")
    run.db = str(tmp_path / "data" / "db.sqlite3")
    yield run
    ids = run("ps", "-aq", "--no-trunc").stdout.split()
    if ids:
        run("rm", "-f", *ids)


def cli_rows(db: str) -> tuple[dict[str, str], set[str]]:
    conn = sqlite3.connect(db)
    try:
        rows = dict(conn.execute("SELECT container_id, status FROM containers_container"))
        volumes = {name for (name,) in conn.execute("SELECT name FROM containers_volume")}
        return rows, volumes
    finally:
        conn.close()


def assert_cli_mirrored(cli, mgr: ContainerManager) -> None:
    rows, volumes = cli_rows(cli.db)
    assert rows == {c.id: c.status.value for c in mgr.list(all=True)}
    assert volumes == {v.name for v in mgr.volumes.list()}


@pytest.mark.parametrize("point", POINTS)
def test_a_cli_run_killed_at_any_point_recovers(cli, image, point):
    from dockweb.runtime.store import Store

    assert cli("pull", "-q", image).returncode == 0  # migrates and stamps the database
    run = ["run", "-d", "-v", "crashvol:/seeded"]
    proc = cli(*run, "--name", "crashed", image, crash_at=point)
    assert proc.returncode == -9, f"{point} was never reached:\n{proc.stderr[-3000:]}"
    mgr = ContainerManager(Store(cli.root))
    settle(mgr, point)
    started = _init_pids(mgr)

    proc = cli(*run, "--name", "after", image)  # repairs first
    assert proc.returncode == 0, proc.stderr

    after = proc.stdout.strip()
    assert mgr.get("after").id == after and mgr.get(after).status is Status.RUNNING
    assert_outcome(mgr, POINTS[point])
    assert_repaired(mgr, started)
    assert_seeded(mgr)
    assert_cli_mirrored(cli, mgr)
    proc = cli("rmi", image)
    assert proc.returncode == 1 and "conflict: unable to" in proc.stderr, proc.stderr
    ids = [c.id for c in mgr.list(all=True)]
    assert cli("rm", "-f", "-v", *ids).returncode == 0
    assert cli("rmi", image).returncode == 0
    assert_repaired(mgr, {})
    assert_cli_mirrored(cli, mgr)
