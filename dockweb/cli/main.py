"""The `dockweb` command: Docker's CLI for images, on dockweb's store and database.

Subcommands, flags, columns and messages follow docker 20.10 so that habits and scripts
carry over. Errors from the engine side are printed as Docker prints them
("Error response from daemon: ...") and exit with status 1.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import sys

from dockweb.cli import containers as containers_cli
from dockweb.docker.filters import parse_filters
from dockweb.docker.images import history_rows, image_rows
from dockweb.runtime.errors import DockwebError

IMAGE_HEADERS = {
    "ID": "IMAGE ID",
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
    "VirtualSize": "VIRTUAL SIZE",
    "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
    "Containers": "CONTAINERS",
}
HISTORY_HEADERS = {
    "ID": "IMAGE",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "CreatedBy": "CREATED BY",
    "Size": "SIZE",
    "Comment": "COMMENT",
}


class UsageError(Exception):
    pass


class _SubParsers(argparse._SubParsersAction):
    """Subcommands that know their one-line help (cobra's Short, for usage errors)."""

    def add_parser(self, name, **kwargs):
        short = kwargs.get("help") or ""
        parser = super().add_parser(name, **kwargs)
        parser.short = short
        return parser


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors the way docker 20.10 (cobra) does: a wrong number
    of arguments with status 1 ("\"docker stop\" requires at least 1 argument.", the hint,
    the usage line and the command's help), a bad flag with status 125."""

    short = ""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _SubParsers)

    def error(self, message: str):  # noqa: D401
        if message.startswith("the following arguments are required"):
            self.arguments_error()
        sys.stderr.write(f"{message}\nSee '{self.prog} --help'.\n")
        sys.exit(125)

    def _arguments(self) -> list[argparse.Action]:
        return [
            a for a in self._actions
            if not a.option_strings and not isinstance(a, argparse._SubParsersAction)
        ]

    def use_line(self) -> str:
        """cobra's UseLine: the command, [OPTIONS] if it has any, its arguments."""
        words = [self.prog]
        if any(a.option_strings and a.dest != "help" for a in self._actions):
            words.append("[OPTIONS]")
        for a in self._arguments():
            m = a.metavar or a.dest.upper()
            words.append(
                {None: m, "+": f"{m} [{m}...]", "*": f"[{m}...]", "?": f"[{m}]"}.get(a.nargs, m)
            )
        return " ".join(words)

    def arguments_error(self) -> None:
        """cobra's RequiresMinArgs, ExactArgs, RequiresRangeArgs or NoArgs; exits 1."""
        least = sum(1 for a in self._arguments() if a.nargs in (None, "+"))
        most: int | None = sum(1 for a in self._arguments() if a.nargs in (None, "?"))
        if any(a.nargs in ("+", "*", argparse.REMAINDER) for a in self._arguments()):
            most = None

        def n(count: int) -> str:
            return f"{count} argument" + ("" if count == 1 else "s")

        if most == 0:
            what = "accepts no arguments"
        elif most == least:
            what = f"requires exactly {n(least)}"
        elif most is None:
            what = f"requires at least {n(least)}"
        elif least == 0:
            what = f"requires at most {n(most)}"
        else:
            what = f"requires at least {least} and at most {n(most)}"
        text = f"\"{self.prog}\" {what}.\nSee '{self.prog} --help'.\n\nUsage:  {self.use_line()}"
        if self.short:
            text += f"\n\n{self.short}"
        sys.stderr.write(text + "\n")
        sys.exit(1)

    def unknown_flag(self, word: str, words: list[str] = ()) -> None:
        """pflag's words for a flag the command does not have; exits 125. ``words``, the
        command line, gives the cluster an unknown letter came in (``-az``)."""
        if word.startswith("--"):
            what = f"unknown flag: {word.split('=', 1)[0]}"
        else:
            letter = word[1:2]
            cluster = next(
                (w for w in words if w[:1] == "-" and w[1:2] not in ("-", "") and letter in w),
                word,
            )
            what = f"unknown shorthand flag: '{letter}' in {cluster}"
        sys.stderr.write(f"{what}\nSee '{self.prog} --help'.\n")
        sys.exit(125)


def _parse(parser: argparse.ArgumentParser, words: list[str]) -> argparse.Namespace:
    """parse_args, with the leftovers reported by the subcommand they were given to."""
    args, extra = parser.parse_known_args(words)
    if not extra:
        return args
    sub = parser
    while True:
        action = next(
            (a for a in sub._actions if isinstance(a, argparse._SubParsersAction)), None
        )
        chosen = getattr(args, action.dest, None) if action is not None else None
        if chosen is None or chosen not in action.choices:
            break
        sub = action.choices[chosen]
    first = next((w for w in extra if w.startswith("-") and w != "-"), None)
    if first is not None and isinstance(sub, _Parser):
        sub.unknown_flag(first, words)
    if isinstance(sub, _Parser):
        sub.arguments_error()
    parser.error(f"unrecognized arguments: {' '.join(extra)}")
    raise AssertionError("unreachable")


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dockweb.settings")
    import django

    django.setup()
    _ensure_database()


def _ensure_database() -> None:
    """Create or update the database on first use, so `dockweb` works on a fresh machine.

    The CLI shares the dashboard's database (it mirrors the store there after each change).
    """
    from django.conf import settings

    from dockweb.cli import schema

    if schema.is_current(settings):
        return
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        call_command("migrate", interactive=False, verbosity=0)
    schema.record(settings)


def _daemon_error(err: Exception) -> str:
    return f"Error response from daemon: {err}"


# -- formatting helpers ------------------------------------------------------------------


def _write(text: str) -> None:
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


# -- commands ----------------------------------------------------------------------------


def cmd_pull(args) -> int:
    from images import services

    if args.all_tags:
        raise UsageError("dockweb: --all-tags is not supported")
    from dockweb.runtime import reference as refs

    try:
        named = refs.parse_normalized_named(args.name)
    except DockwebError as err:
        print(err, file=sys.stderr)
        return 1
    if named.is_name_only and not args.quiet:
        print("Using default tag: latest", flush=True)
    renderer = _PullRenderer(sys.stdout, quiet=args.quiet)
    try:
        result = services.pull_image(args.name, platform=args.platform, on_progress=renderer)
    except DockwebError as err:
        renderer.finish()
        print(_daemon_error(err), file=sys.stderr)
        return 1
    renderer.finish()
    print(result.reference)
    return 0


class _PullRenderer:
    """Docker's jsonmessage display: one line per layer, redrawn in place on a terminal."""

    def __init__(self, out, *, quiet: bool):
        self.out = out
        self.quiet = quiet
        self.tty = out.isatty()
        self.ids: dict[str, int] = {}

    def __call__(self, event: dict) -> None:
        if self.quiet:
            return
        if event["kind"] == "message":
            self.ids = {}
            self.out.write(event["text"] + "\n")
            self.out.flush()
            return
        progress = _progress_bar(event.get("current"), event.get("total"))
        if not self.tty:
            if progress:
                return  # docker hides progress bars when not on a terminal
            self.out.write(f"{event['id']}: {event['status']}\n")
            return
        line = self.ids.get(event["id"])
        if line is None:
            line = self.ids[event["id"]] = len(self.ids)
            self.out.write("\n")
        diff = len(self.ids) - line
        self.out.write(f"\x1b[{diff}A\r\x1b[2K{event['id']}: {event['status']} {progress}\r")
        self.out.write(f"\x1b[{diff}B")
        self.out.flush()

    def finish(self) -> None:
        self.out.flush()


def _progress_bar(current: int | None, total: int | None) -> str:
    from dockweb.runtime.units import human_size

    if not current or current <= 0:
        return ""
    if not total or total <= 0:
        return f"{human_size(current):>8}"
    pct = min(50, int(current / total * 100) // 2)
    bar = "[" + "=" * pct + ">" + " " * (50 - pct) + "] "
    return bar + f"{human_size(current):>8}/{human_size(total)}"


def cmd_images(args) -> int:
    from dockweb.docker.format import format_rows
    from images import services

    try:
        filters = parse_filters(args.filter or [])
        if args.repository:
            filters.setdefault("reference", []).append(args.repository)
        summaries = services.list_images(all=args.all, filters=filters)
    except DockwebError as err:
        print(_daemon_error(err), file=sys.stderr)
        return 1
    trunc = not args.no_trunc
    if args.quiet:
        fmt = "{{.ID}}"
    elif args.format:
        fmt = args.format
    elif args.digests:
        fmt = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    else:
        fmt = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    rows = image_rows(summaries, digests=args.digests, trunc=trunc, fmt=fmt)
    _write(format_rows(rows, fmt, IMAGE_HEADERS, type_name="*formatter.imageContext"))
    return 0


def cmd_rmi(args) -> int:
    from images import services

    errors = []
    fatal = False
    for name in args.images:
        try:
            records = services.remove_image(name, force=args.force, prune=not args.no_prune)
        except DockwebError as err:
            if _is_not_found(err):
                # the client turns the daemon's 404 into its own message, naming the
                # image as typed
                errors.append(f"Error: No such image: {name}")
            else:
                errors.append(_daemon_error(err))
                fatal = True
            continue
        for kind, value in records:
            print(f"{kind}: {value}")
    if errors:
        msg = "\n".join(errors)
        print(msg, file=sys.stderr)
        if not args.force or fatal:
            return 1
    return 0


def _is_not_found(err: Exception) -> bool:
    from dockweb.runtime.errors import ImageNotFound

    return isinstance(err, ImageNotFound)


def cmd_tag(args) -> int:
    from dockweb.runtime import reference as refs
    from images import services

    try:
        refs.parse_normalized_named(args.target)
    except DockwebError as err:
        print(f'Error parsing reference: "{args.target}" is not a valid repository/tag: {err}',
              file=sys.stderr)
        return 1
    try:
        services.tag_image(args.source, args.target)
    except DockwebError as err:
        print(_daemon_error(err), file=sys.stderr)
        return 1
    return 0


def cmd_inspect(args) -> int:
    from dockweb.docker.format import render as render_template
    from images import services

    results = []
    errors = []
    for name in args.images:
        try:
            results.append(services.inspect_image(name))
        except DockwebError as err:
            if isinstance(err, _image_not_found()):
                errors.append(f"Error: No such image: {name}")
            else:
                errors.append(_daemon_error(err))
    if args.format:
        for r in results:
            _write(render_template(args.format, r))
    else:
        print(json.dumps(results, indent=4, ensure_ascii=False))
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 1
    return 0


def _image_not_found():
    from dockweb.runtime.errors import ImageNotFound

    return ImageNotFound


def cmd_history(args) -> int:
    from dockweb.docker.format import format_rows
    from images import services

    try:
        items = services.image_history(args.image)
    except DockwebError as err:
        print(_daemon_error(err), file=sys.stderr)
        return 1
    rows = history_rows(items, human=args.human, trunc=not args.no_trunc)
    if args.quiet:
        fmt = "{{.ID}}"
    elif args.format:
        fmt = args.format
    elif args.human:
        fmt = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
    else:
        fmt = "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
    _write(format_rows(rows, fmt, HISTORY_HEADERS, type_name="*image.historyContext"))
    return 0


def cmd_mount(args) -> int:
    from images import services

    try:
        print(services.mount_image(args.image))
    except DockwebError as err:
        print(_daemon_error(err), file=sys.stderr)
        return 1
    return 0


def cmd_unmount(args) -> int:
    from images import services

    status = 0
    for name in args.images:
        try:
            services.unmount_image(name)
            print(name)
        except DockwebError as err:
            print(_daemon_error(err), file=sys.stderr)
            status = 1
    return status


# -- parser ------------------------------------------------------------------------------


def _bool_flag(parser, *names, help: str, default: bool = False) -> None:
    parser.add_argument(*names, action=argparse.BooleanOptionalAction, default=default, help=help)


def _add_pull(sub, name: str) -> None:
    p = sub.add_parser(name, help="Pull an image from a registry")
    p.add_argument("name", metavar="NAME[:TAG|@DIGEST]")
    p.add_argument("-a", "--all-tags", action="store_true", help="Download all tagged images")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    p.add_argument("--platform", help="Set platform if server is multi-platform capable")
    p.add_argument("--disable-content-trust", action="store_true", default=True,
                   help="Skip image verification (default true)")
    p.set_defaults(func=cmd_pull)


def _add_ls(sub, name: str, aliases=()) -> None:
    p = sub.add_parser(name, aliases=list(aliases), help="List images")
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    p.add_argument("-a", "--all", action="store_true",
                   help="Show all images (default hides intermediate images)")
    p.add_argument("--digests", action="store_true", help="Show digests")
    p.add_argument(
        "-f", "--filter", action="append", help="Filter output based on conditions provided"
    )
    p.add_argument("--format", help="Pretty-print images using a Go template")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.set_defaults(func=cmd_images)


def _add_rm(sub, name: str, aliases=()) -> None:
    p = sub.add_parser(name, aliases=list(aliases), help="Remove one or more images")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--force", action="store_true", help="Force removal of the image")
    p.add_argument("--no-prune", action="store_true", help="Do not delete untagged parents")
    p.set_defaults(func=cmd_rmi)


def _add_tag(sub, name: str) -> None:
    p = sub.add_parser(name, help="Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")
    p.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
    p.add_argument("target", metavar="TARGET_IMAGE[:TAG]")
    p.set_defaults(func=cmd_tag)


def _add_inspect(sub, name: str) -> None:
    p = sub.add_parser(name, help="Display detailed information on one or more images")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("-f", "--format", help="Format the output using the given Go template")
    p.set_defaults(func=cmd_inspect)


def _add_history(sub, name: str) -> None:
    p = sub.add_parser(name, help="Show the history of an image")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--format", help="Pretty-print images using a Go template")
    p.add_argument("-H", "--human", action=argparse.BooleanOptionalAction, default=True,
                   help="Print sizes and dates in human readable format (default true)")
    p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    p.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    p.set_defaults(func=cmd_history)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with ``command="run"``, one that knows only ``run`` and parses a
    ``run`` command line alike (building every subcommand costs about 10 ms a command)."""
    parser = _Parser(prog="dockweb", description="A self-sufficient runtime for containers")
    parser.add_argument("--root", help="Store root (default: DOCKWEB_ROOT or the settings)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    if command == "run":
        containers_cli.add_run_command(sub)
        return parser
    from dockweb.cli import build as build_cli
    from dockweb.cli import system as system_cli
    from dockweb.cli import transfer as transfer_cli

    _add_pull(sub, "pull")
    _add_ls(sub, "images")
    _add_rm(sub, "rmi")
    _add_tag(sub, "tag")
    _add_history(sub, "history")
    transfer_cli.add_commands(sub)

    image = sub.add_parser("image", help="Manage images")
    isub = image.add_subparsers(dest="image_command", metavar="COMMAND", parser_class=_Parser)
    isub.required = True
    _add_pull(isub, "pull")
    _add_ls(isub, "ls", aliases=("list",))
    _add_rm(isub, "rm", aliases=("remove",))
    _add_tag(isub, "tag")
    _add_inspect(isub, "inspect")
    _add_history(isub, "history")
    transfer_cli.add_image_commands(isub)
    m = isub.add_parser("mount", help="Mount an image's root filesystem read-only; print its path")
    m.add_argument("image", metavar="IMAGE")
    m.set_defaults(func=cmd_mount)
    u = isub.add_parser("unmount", aliases=["umount"], help="Unmount an image's root filesystem")
    u.add_argument("images", nargs="+", metavar="IMAGE")
    u.set_defaults(func=cmd_unmount)
    containers_cli.add_commands(sub)
    system_cli.add_commands(sub)
    build_cli.add_commands(sub)
    return parser


def _go_bool_flags(argv: list[str]) -> list[str]:
    """Accept Go's ``--flag=false`` spelling of boolean flags, as docker's pflag does."""
    out = []
    for tok in argv:
        name, eq, value = tok.partition("=")
        if eq and name.startswith("-") and value.lower() in ("true", "false", "1", "0", "t", "f"):
            truthy = value.lower() in ("true", "1", "t")
            if name in ("-H", "--human"):
                out.append("--human" if truthy else "--no-human")
                continue
            if name == "--sig-proxy":
                out.append("--sig-proxy" if truthy else "--no-sig-proxy")
                continue
            if name in _BOOL_FLAGS:
                if truthy:
                    out.append(name)
                continue
        out.append(tok)
    return out


_BOOL_FLAGS = {
    "-a", "--all", "--all-tags", "--digests", "--no-trunc", "-q", "--quiet", "--force",
    "--no-prune", "--disable-content-trust",
}


# verbs that change something; recorded in the dashboard's audit log as cli:<unix user>
_AUDITED = {
    "pull", "rmi", "tag", "run", "create", "start", "stop", "restart", "kill", "pause",
    "unpause", "rm", "remove", "exec", "prune", "mount", "unmount", "load", "import",
    "rename", "cp", "update",
}
_NOUNS = {"image", "container", "volume", "system"}


def _audit(args, argv: list[str] | None, code: int) -> None:
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
    from access.audit import audit, cli_actor

    words = list(sys.argv[1:] if argv is None else argv)
    audit(cli_actor(), f"{noun}.{verb}", shlex.join(words), exit=code)


def _command(words: list[str]) -> str | None:
    """The subcommand of a command line: its first word after the ``--root`` option."""
    i = 0
    while i < len(words) and (words[i] == "--root" or words[i].startswith("--root=")):
        i += 2 if words[i] == "--root" else 1
    return words[i] if i < len(words) else None


def entry() -> None:
    """The `dockweb` command (and ``python -m dockweb.cli``): ``main()``, then the exit.
    After the fast ``run`` path (no Django) nothing is left to do but the interpreter's
    finalization, which frees every module and object one by one (5 to 10 ms of a run): the
    process ends at once, once its output is flushed."""
    code = main()
    if "django" not in sys.modules:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    # Importing the modules of a command sets the cyclic collector off hundreds of times for
    # nothing (about 5 ms of a `dockweb run`): it is off until they are imported (on again
    # before the command runs; the fast run path, before it creates the container).
    gc.disable()
    try:
        return _main(argv)
    finally:
        gc.enable()


def _main(argv: list[str] | None) -> int:
    words = _go_bool_flags(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser("run" if _command(words) == "run" else None)
    args = _parse(parser, words)
    if args.root:
        os.environ["DOCKWEB_ROOT"] = os.path.abspath(args.root)
    if args.func is containers_cli.cmd_run:
        from dockweb.cli import fastrun

        try:
            code = fastrun.run(args, list(sys.argv[1:] if argv is None else argv))
        except KeyboardInterrupt:  # Ctrl-C with --sig-proxy=false: as the ordinary path
            return 130
        if code is not None:
            return code
    _setup_django()
    from dockweb.docker.format import FormatError

    gc.enable()
    try:
        code = args.func(args)
        _audit(args, argv, code)
        return code
    except FormatError as err:
        print(err, file=sys.stderr)
        return 1
    except UsageError as err:
        print(err, file=sys.stderr)
        return 125
    except DockwebError as err:
        print(_daemon_error(err), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
