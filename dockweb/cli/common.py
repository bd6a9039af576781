"""What the commands share: Docker's ways of printing (the daemon's errors, the client's
404s), the CLI's own errors, setting Django up (and the database on first use), the audit log.

Imported by main.py before the command is chosen, and by the fast ``run`` path: Django and
the apps are imported inside the functions that need them, once Django is set up.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from typing import TYPE_CHECKING

from dockweb.cli import schema
from dockweb.runtime.errors import ContainerNotFound, DockwebError, VolumeNotFound

if TYPE_CHECKING:
    from dockweb.runtime.reference import Reference


class UsageError(Exception):
    pass


def daemon_error(err: Exception) -> str:
    return f"Error response from daemon: {err}"


def is_not_found(err: Exception) -> bool:
    """The container or volume a command names does not exist: the docker client's 404
    (``client_not_found``). Other missing things (an image behind a container, a manifest)
    are the daemon's errors, printed as such."""
    return isinstance(err, (ContainerNotFound, VolumeNotFound))


def client_not_found(kind: str, name: str) -> str:
    """The docker client's own words for a 404 (wrapResponseError)."""
    return f"Error: No such {kind}: {name}"


def print_error(msg: str) -> None:
    sys.stderr.write(msg if msg.endswith("\n") else msg + "\n")


def print_out(text: str) -> None:
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


def print_inspect(results: list[dict], errors: list[str], fmt: str | None) -> int:
    """The tail of docker's ``inspect`` commands: each result through the ``--format``
    template, or all of them as one indented JSON array (``[]`` when none was found); then
    the errors on stderr, one a line. Returns the exit code: 1 when any name failed."""
    if fmt:
        # the template engine is imported here, so that the fast run path stays light
        from dockweb.docker.template import render

        for r in results:
            print_out(render(fmt, r))
    else:
        print(json.dumps(results, indent=4, ensure_ascii=False))
    if errors:
        print_error("\n".join(errors))
        return 1
    return 0


def repository_name(name: str, *, all_tags: bool) -> Reference | None:
    """The NAME[:TAG] that ``pull`` and ``push`` take, normalized as Docker does; None once
    the parse error is printed. ``--all-tags`` is refused (UsageError)."""
    # imported here, so that the fast run path stays light
    from dockweb.runtime import reference as refs

    if all_tags:
        raise UsageError("dockweb: --all-tags is not supported")
    try:
        return refs.parse_normalized_named(name)
    except DockwebError as err:
        print(err, file=sys.stderr)
        return None


def setup_django() -> None:
    """Django set up for the command, and the database created or migrated if need be."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dockweb.settings")
    import django  # here: the fast run path imports this module and never sets Django up

    django.setup()
    ensure_database()


def ensure_database() -> None:
    """Create or update the database on first use, so `dockweb` works on a fresh machine.

    The CLI shares the dashboard's database (it mirrors the store there after each change).
    """
    from django.conf import settings  # Django's modules: once setup_django() ran

    if schema.is_current(settings):
        return
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        call_command("migrate", interactive=False, verbosity=0)
    schema.record(settings)


# verbs that change something; recorded in the dashboard's audit log as cli:<unix user>
_AUDITED = {
    "pull", "rmi", "tag", "run", "create", "start", "stop", "restart", "kill", "pause",
    "unpause", "rm", "remove", "exec", "prune", "mount", "unmount", "load", "import",
    "rename", "cp", "update",
}
_NOUNS = {"image", "container", "volume", "system"}


def audit(args, argv: list[str] | None, code: int) -> None:
    """One audit row for a state-changing command that ran (whatever its exit status)."""
    path = [args.command]
    if args.command in _NOUNS:
        path.append(getattr(args, f"{args.command}_command", "") or "")
    verb = path[-1]
    if verb not in _AUDITED:
        return
    if len(path) == 1:
        noun = "image" if verb in ("pull", "rmi", "tag", "load", "import") else "container"
    else:
        noun = path[0]
    verb = {"rmi": "remove", "rm": "remove"}.get(verb, verb)
    from access.audit import audit as record  # an app: once Django is set up
    from access.audit import cli_actor

    words = list(sys.argv[1:] if argv is None else argv)
    record(cli_actor(), f"{noun}.{verb}", shlex.join(words), exit=code)
