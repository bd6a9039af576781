"""`dockweb run` without setting Django up: the same container, output, exit code and rows.

Setting Django up costs about 0.4 s, more than a whole `docker run` here, and `run` needs
nothing of it but two writes to the database. So when the database is SQLite and already
migrated (dockweb/cli/schema.py), ``run`` goes straight to the runtime and mirrors the
container with plain sqlite3 (containers/fastmirror.py, the same rows as
``services.sync_containers``): once it has run for 0.1 s (``run -d``: once started), and
when the command returns (the container exited, or is gone with --rm), in one transaction
with the audit row. It reads the settings' store and database from the environment without
importing them (``locations``). The supervisor is forked from this process instead
of a new interpreter, and its exit hook is containers/exit_hook.py (called in the
supervisor), so the dashboard learns of the exit even when this command is interrupted.
Everything else (a PostgreSQL database, a schema to migrate, an image to pull, an
in-process caller with Django already set up) takes the ordinary path in
dockweb/cli/run.py. Before creating, ``run`` repairs what a crash left
(``ContainerManager.reconcile``); it mirrors the containers that changed and those the
database lacks or keeps (a run killed before its mirror, an exit hook still to come) once
its container is started, while it runs or is being removed (``_Database``).
"""

from __future__ import annotations

import fcntl
import gc
import json
import os
import sqlite3
import sys
import threading
import time

from containers import fastmirror
from dockweb import fastdb
from dockweb.cli import schema
from dockweb.cli.run_common import (
    CidFile,
    SignalProxy,
    copy_log_lines,
    report,
    run_exit_code,
    spec_from_args,
    start_failed,
)
from dockweb.runtime import syscalls
from dockweb.runtime.containers import ContainerManager
from dockweb.runtime.errors import DockwebError
from dockweb.runtime.store import Store


def _django_ready() -> bool:
    apps = sys.modules.get("django.apps")
    return apps is not None and apps.apps.ready


def run(args, words: list[str]) -> int | None:
    """`dockweb run`'s exit status, or None when the ordinary path must run it instead
    (nothing was created then). ``words``: the command line, for the audit row."""
    if _django_ready() or args.interactive or args.tty:
        return None  # -i/-t attach to the supervisor: the ordinary path does that
    where = fastdb.locations()
    if where is None or not schema.is_current_as_recorded(where[1]):
        return None
    root, db = where

    try:
        spec = spec_from_args(args)
    except DockwebError as err:
        report("run", err, with_help=True)
        return _finish(_Database(db), None, words, 125)
    store = Store(root)
    try:
        store.lookup(spec.image)
    except DockwebError:
        return None  # to pull it (or to say why not) as the ordinary path does
    hook_args = ["--database", db, "--root", root]
    starter = os.getpid()

    def on_exit(cid: str) -> None:
        # An attached run mirrors the end itself as the supervisor releases the container;
        # the supervisor does, should this command be gone (interrupted, killed) by then.
        if args.detach or not syscalls.pid_alive(starter):
            # only ever needed in the forked supervisor, once the container has exited
            from containers import exit_hook

            exit_hook.main([*hook_args, cid])

    mgr = ContainerManager(
        store,
        exit_command=[sys.executable, "-m", "containers.exit_hook", *hook_args],
        fork_supervisor=True,
        # the forked supervisor has these modules loaded: the hook in-process, not a new
        # interpreter (about 0.1 s of CPU after each exit, landing on whatever runs next)
        on_exit=on_exit,
    )
    # what a crash left, repaired before creating; its rows are mirrored by _Database
    database = _Database(db, mgr, mgr.reconcile())
    gc.enable()  # main() turned it off while the modules were imported
    try:
        try:
            cid_file = CidFile(args.cidfile)
            try:
                cid = mgr.create(spec).id
                cid_file.write(cid)
            finally:
                cid_file.close()
        except DockwebError as err:
            report("run", err, with_help=True)
            return _finish(database, None, words, run_exit_code(err))
        database.own = cid
        try:
            if not args.detach:
                code = _start_attached(mgr, cid, database, sig_proxy=args.sig_proxy)
                return _finish(database, cid, words, code)
            mgr.start(cid)
        except DockwebError as err:  # docker run --rm removes a container that failed to start
            code = start_failed(
                err, spec.auto_remove, lambda: mgr.remove(cid, force=True, volumes=True)
            )
            return _finish(database, cid, words, code)
        code = _finish(database, cid, words, 0)
        print(cid)
        return code
    finally:
        database.close()


class _Database:
    """The fast path's connection, opened once the supervisor is forked (which must not
    share it): while the container starts or its supervisor removes it, so that opening it
    costs the run nothing. Opening it mirrors what a crash left (the containers
    ``reconcile`` changed, and those the database lacks or keeps: a run killed before its
    mirror, an exit hook still to come)."""

    def __init__(self, path: str, mgr=None, report: dict | None = None):
        self.path = path
        self.mgr = mgr
        self.report = report or {}
        self.own = ""  # this run's container, mirrored by the run itself
        self.conn = None

    def connection(self):
        if self.conn is None:
            self.conn = fastdb.connect(self.path)
            if self.mgr is not None:
                stale = fastmirror.container_ids(self.conn) ^ set(self.mgr._ids())
                stale |= set(self.report.get("removed", [])) | set(self.report.get("stopped", []))
                stale.discard(self.own)
                fastmirror.sync_containers(self.conn, self.mgr, stale)
            fastdb.actor()  # the audit row's, looked up now too
        return self.conn

    def mirror(self, cid: str) -> None:
        fastmirror.sync_container(self.connection(), self.mgr, cid)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def _finish(database: _Database, cid: str | None, words: list[str], code: int) -> int:
    """The container's row mirrored (``cid``: None when there is none) and the audit row
    the ordinary path writes for `run` (access.audit), in one transaction; ``code``."""
    try:
        conn = database.connection()
        if cid is None:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                fastdb.audit(conn, "container.run", words, code)
        else:
            fastmirror.sync_container(
                conn,
                database.mgr,
                cid,
                then=lambda c: fastdb.audit(c, "container.run", words, code),
            )
    except (sqlite3.Error, DockwebError, OSError) as err:  # never fail the command it records
        print(f"dockweb: cannot record the run in the database: {err}", file=sys.stderr)
    finally:
        database.close()
    return code


# A container that ends sooner is mirrored once, when it has ended: a row written as
# running and rewritten at once would cost a transaction (5 to 25 ms) in every short run.
MIRROR_RUNNING_AFTER = 0.1


def _start_attached(mgr, cid: str, database: _Database, *, sig_proxy: bool) -> int:
    """As cli/run.py's ``start_attached``: the container's output copied to ours,
    signals passed on to it (``sig_proxy``), its exit code. The exit is noticed by a thread
    blocked on the supervisor's lock, not by polling it; new output and signals are looked
    for every 20 ms until then. Mirrored as running after ``MIRROR_RUNNING_AFTER`` seconds;
    the caller mirrors the end."""
    cdir = mgr.cdir(cid)
    log_path = os.path.join(cdir, "container.log")
    lock_fd = os.open(os.path.join(cdir, "shim.lock"), os.O_RDONLY | os.O_CREAT, 0o600)
    proxy = SignalProxy(lambda signum: mgr.kill(cid, signum), on=sig_proxy)
    try:
        with open(log_path, "rb") as log, proxy:
            log.seek(0, os.SEEK_END)
            mgr.note_attach(cid)
            mgr.start(cid)
            started = time.monotonic()
            database.connection()  # meanwhile, as the container runs (or is being removed)
            mirrored = False
            exited = threading.Event()

            def wait_for_exit() -> None:
                fcntl.flock(lock_fd, fcntl.LOCK_SH)  # the supervisor holds it until the end
                exited.set()

            threading.Thread(target=wait_for_exit, daemon=True).start()
            pending = b""
            while True:
                proxy.forward()
                chunk = log.read()
                if chunk:
                    pending = copy_log_lines(pending + chunk)
                    continue
                if exited.wait(0.02):
                    pending = copy_log_lines(pending + log.read())
                    break
                if not mirrored and time.monotonic() - started >= MIRROR_RUNNING_AFTER:
                    database.mirror(cid)  # the dashboard shows it running
                    mirrored = True
        data = os.pread(lock_fd, 65536, 0)
    finally:
        os.close(lock_fd)
    if data.strip():
        return int(json.loads(data)["exit_code"])
    return mgr.wait(cid)
