"""`dockweb pull` without setting Django up, when no `dockweb system service` takes it
(thinpull.py): the same pull, output, exit code and audit row as cli/images.py's
``cmd_pull``.

The ordinary path sets Django up (about 0.35 s) before it pulls, then mirrors the store into
the database and runs the layer explorer's analysis of the image (about 0.35 s for 20,000
files) before it returns: a warm pull (every layer present) took 0.8-1.3 s against about
0.12 s for `docker pull`. Here the command pulls with the runtime alone, prints, writes its
audit row with plain sqlite3 (fastdb.py), and hands the mirror and the analysis to
``manage.py image_pulled``, started in a session of its own, which it does not wait for: as
dockerd's clients return before the daemon's bookkeeping, and as the service does for
thinpull.py. The store is the truth for the CLI (`dockweb images` reads it); the dashboard
shows the image once that process has mirrored it (its live notice updates open pages),
and any later mirror (every change, the worker's start) catches up should it not run.

Used only when all of these hold, else the ordinary path runs the command:
- the database is SQLite, already migrated (dockweb/cli/schema.py), where the settings put
  it (fastdb.locations);
- the options are ones thinpull.parse_args knows (``-q``, ``--platform``,
  ``--disable-content-trust``) and the name parses;
- none of the settings a pull reads is set in the environment (``SETTINGS``): the runtime's
  defaults are the settings' defaults.
"""

from __future__ import annotations

import os
import sqlite3
import sys

from dockweb import fastdb
from dockweb.cli import schema, thinpull
from dockweb.cli.common import daemon_error
from dockweb.cli.progress import PullRenderer
from dockweb.runtime import manifest as mf
from dockweb.runtime import reference as refs
from dockweb.runtime.errors import DockwebError
from dockweb.runtime.pull import pull as runtime_pull
from dockweb.runtime.registry import RegistryClient
from dockweb.runtime.store import Store

# What images.services.pulls reads from the settings; set, they send the command the
# ordinary way (which reads them).
SETTINGS = (
    "DOCKWEB_INSECURE_REGISTRIES",
    "DOCKWEB_MAX_CONCURRENT_DOWNLOADS",
    "DOCKWEB_LAYER_MAX_ENTRIES",
    "DOCKWEB_LAYER_MAX_BYTES",
    "DOCKWEB_LAYER_MAX_RATIO",
    "DOCKWEB_LAYER_RATIO_FLOOR",
)


def pull(args: list[str], words: list[str]) -> int | None:
    """`dockweb pull ARGS`'s exit status, or None when the ordinary path must run it
    (nothing was pulled then). ``words``: the command line, for the audit row."""
    if any(os.environ.get(name) for name in SETTINGS):
        return None
    parsed = thinpull.parse_args(args)
    where = fastdb.locations()
    if parsed is None or where is None or not schema.is_current_as_recorded(where[1]):
        return None
    name, quiet, platform = parsed
    try:
        ref = refs.parse_normalized_named(name)
        if platform:
            mf.parse_platform(platform)
    except (DockwebError, ValueError):
        return None  # the ordinary path says why, in its words
    root, db = where
    if ref.is_name_only and not quiet:
        print("Using default tag: latest", flush=True)
    renderer = PullRenderer(sys.stdout, quiet=quiet)
    store = Store(root)
    image_id, code, result = "", 0, None
    try:
        store.reconcile()
        result = runtime_pull(
            store, RegistryClient(), name, platform=platform or None, on_progress=renderer
        )
    except DockwebError as err:
        renderer.finish()
        print(daemon_error(err), file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    else:
        renderer.finish()
        print(result.reference, flush=True)
        image_id = result.image_id
    # an image found up to date whose rows the database has: nothing to mirror (a process
    # setting Django up for nothing would compete with the next command)
    unchanged = None
    if result is not None and not result.updated:
        names = store.all_references().get(image_id, [])
        unchanged = (image_id, {(r.name, r.tag or "", r.digest or "") for r in names})
    if not _record(db, words, code, unchanged):
        mirror_later(image_id)
    return code


def _record(db: str, words: list[str], code: int, unchanged: tuple[str, set] | None) -> bool:
    """The audit row of `image.pull`, as cli/common.audit writes it. ``unchanged``: the
    image of a pull that found it up to date and the references the store has for it; True
    when the database mirrors exactly those and has the image's analysis."""
    try:
        conn = fastdb.connect(db)
        try:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                fastdb.audit(conn, "image.pull", words, code)
                return unchanged is not None and _mirrored(conn, *unchanged)
        finally:
            conn.close()
    except sqlite3.Error as err:  # never fail the command it records
        print(f"dockweb: cannot record the pull in the database: {err}", file=sys.stderr)
        return False


def _mirrored(conn: sqlite3.Connection, image_id: str, references: set) -> bool:
    """Whether the database has the image's row, its explorer analysis and exactly
    ``references`` (repository name, tag, digest) for it."""
    analyzed = conn.execute(
        "SELECT 1 FROM images_image i JOIN images_imageanalysis a ON a.image_id = i.id"
        " WHERE i.image_id = ?",
        (image_id,),
    ).fetchone()
    rows = conn.execute(
        "SELECT p.name, r.tag, r.digest FROM images_reference r"
        " JOIN images_repository p ON r.repository_id = p.id"
        " JOIN images_image i ON r.image_id = i.id WHERE i.image_id = ?",
        (image_id,),
    ).fetchall()
    return analyzed is not None and set(rows) == references


def mirror_later(image_id: str) -> None:
    """Start ``manage.py image_pulled [IMAGE_ID]`` in a session of its own, its standard
    streams on /dev/null (a caller reading this command's output through a pipe must not
    wait for it); not waited for."""
    manage = os.path.join(fastdb.package_root(), "manage.py")
    argv = [sys.executable, manage, "image_pulled", *([image_id] if image_id else [])]
    try:
        os.posix_spawn(
            sys.executable,
            argv,
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
            ],
            setsid=True,
        )
    except OSError as err:
        print(f"dockweb: cannot mirror the pull into the database: {err}", file=sys.stderr)
