"""`dockweb run` without setting Django up: the same container, output, exit code and rows.

Setting Django up costs about 0.4 s, more than a whole `docker run` here, and `run` needs
nothing of it but two writes to the database. So when the database is SQLite and already
migrated (dockweb/cli/schema.py), ``run`` goes straight to the runtime and mirrors the
container with plain sqlite3 (containers/fastmirror.py, the same rows as
``services.sync_containers``): after the start, and once more when it returns (the
container exited, or is gone with --rm). The supervisor is forked from this process instead
of a new interpreter, and its exit hook is containers/exit_hook.py (called in the
supervisor), so the dashboard learns of the exit even when this command is interrupted.
Everything else (a PostgreSQL database, a schema to migrate, an image to pull, an
in-process caller with Django already set up) takes the ordinary path in
dockweb/cli/containers.py. Before creating, ``run`` repairs what a crash left
(``ContainerManager.reconcile``) and mirrors the containers it changed and those the
database lacks or keeps (a run killed before its mirror, an exit hook still to come).
"""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import sys
import threading

from dockweb.cli import schema
from dockweb.runtime.errors import DockwebError


def _django_ready() -> bool:
    apps = sys.modules.get("django.apps")
    return apps is not None and apps.apps.ready


def run(args) -> int | None:
    """`dockweb run`'s exit status, or None when the ordinary path must run it instead
    (nothing was created then)."""
    if _django_ready() or args.interactive or args.tty:
        return None  # -i/-t attach to the supervisor: the ordinary path does that
    settings = importlib.import_module(os.environ.get("DJANGO_SETTINGS_MODULE", "dockweb.settings"))
    db = schema.sqlite_path(settings)
    if db is None or not schema.is_current(settings):
        return None

    from containers import exit_hook, fastmirror
    from dockweb.cli.containers import _report, _run_exit_code, _spec_from_args
    from dockweb.runtime.containers import ContainerManager
    from dockweb.runtime.store import Store

    try:
        spec = _spec_from_args(args)
    except DockwebError as err:
        _report("run", err, with_help=True)
        return 125
    root = str(settings.DOCKWEB_ROOT)
    store = Store(root)
    try:
        store.lookup(spec.image)
    except DockwebError:
        return None  # to pull it (or to say why not) as the ordinary path does
    hook_args = ["--database", db, "--root", root]
    mgr = ContainerManager(
        store,
        exit_command=[sys.executable, "-m", "containers.exit_hook", *hook_args],
        fork_supervisor=True,
        # the forked supervisor has these modules loaded: the hook in-process, not a new
        # interpreter (about 0.1 s of CPU after each exit, landing on whatever runs next)
        on_exit=lambda cid: exit_hook.main([*hook_args, cid]),
    )
    # what a crash left: repaired, and mirrored with the rows the mirror lacks or keeps
    report = mgr.reconcile()
    stale = fastmirror.container_ids(db) ^ set(mgr._ids())
    fastmirror.sync_containers(db, mgr, stale.union(report["removed"], report["stopped"]))
    conn = None

    def mirror(cid: str) -> None:
        nonlocal conn
        if conn is None:  # opened after the fork: the supervisor must not share it
            conn = fastmirror.connect(db)
        fastmirror.sync_container(conn, mgr, cid)

    try:
        try:
            cid = mgr.create(spec).id
        except DockwebError as err:
            _report("run", err, with_help=True)
            return _run_exit_code(err)
        try:
            if not args.detach:
                return _start_attached(mgr, cid, mirror)
            mgr.start(cid)
            mirror(cid)
        except DockwebError as err:
            _report("run", err, with_help=False)
            if spec.auto_remove:  # docker run --rm removes a container that failed to start
                try:
                    mgr.remove(cid, force=True, volumes=True)
                except DockwebError:
                    pass
            mirror(cid)
            return _run_exit_code(err)
        print(cid)
        return 0
    finally:
        if conn is not None:
            conn.close()


def _start_attached(mgr, cid: str, mirror) -> int:
    """As cli/containers.py's ``_start_attached``: the container's output copied to ours,
    its exit code. The exit is noticed by a thread blocked on the supervisor's lock, not by
    polling it; new output is looked for every 20 ms until then."""
    from dockweb.cli.containers import _copy_log_lines

    cdir = mgr.cdir(cid)
    log_path = os.path.join(cdir, "container.log")
    lock_fd = os.open(os.path.join(cdir, "shim.lock"), os.O_RDONLY | os.O_CREAT, 0o600)
    try:
        with open(log_path, "rb") as log:
            log.seek(0, os.SEEK_END)
            try:
                mgr.start(cid)
            finally:
                mirror(cid)
            exited = threading.Event()

            def wait_for_exit() -> None:
                fcntl.flock(lock_fd, fcntl.LOCK_SH)  # the supervisor holds it until the end
                exited.set()

            threading.Thread(target=wait_for_exit, daemon=True).start()
            pending = b""
            while True:
                chunk = log.read()
                if chunk:
                    pending = _copy_log_lines(pending + chunk)
                    continue
                if exited.wait(0.02):
                    pending = _copy_log_lines(pending + log.read())
                    break
        data = os.pread(lock_fd, 65536, 0)
    finally:
        os.close(lock_fd)
    mirror(cid)
    if data.strip():
        return int(json.loads(data)["exit_code"])
    return mgr.wait(cid)


def audit(words: list[str], code: int) -> None:
    """The audit row the ordinary path writes for `run` (access.audit), with plain sqlite3:
    the fast path must not leave commands out of the dashboard's audit log."""
    import datetime
    import getpass
    import shlex
    import sqlite3

    settings = importlib.import_module(os.environ.get("DJANGO_SETTINGS_MODULE", "dockweb.settings"))
    db = schema.sqlite_path(settings)
    try:
        actor = f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        actor = f"cli:uid{os.getuid()}"
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    try:
        conn = sqlite3.connect(db, timeout=20)
        try:
            with conn:
                conn.execute(
                    "INSERT INTO access_auditevent (user_id, actor, action, target, detail, "
                    "remote_addr, at) VALUES (NULL, ?, 'container.run', ?, ?, NULL, ?)",
                    (actor[:150], shlex.join(words)[:512], json.dumps({"exit": code}), now),
                )
        finally:
            conn.close()
    except sqlite3.Error as err:  # as access.audit: never fail the command it records
        print(f"audit: cannot record container.run: {err}", file=sys.stderr)
