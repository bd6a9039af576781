"""The `dockweb` command (the direct path; dockweb/cli/launch.py is the entry point, which
may hand `dockweb run` to a resident runner instead): the parser and the dispatch.

Subcommands, flags, columns and messages follow docker 20.10 so that habits and scripts
carry over. Errors from the engine side are printed as Docker prints them
("Error response from daemon: ...") and exit with status 1.

The parser (parsers.py) names each command's function as ``"module:function"`` of this
package; only the chosen command's module is imported, after Django is set up. `dockweb
run` tries the fast path (fastrun.py, no Django) first, with a parser that knows only
``run``.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys

from dockweb.cli import parsers
from dockweb.cli.common import UsageError, audit, daemon_error, setup_django
from dockweb.cli.parsing import Parser, command_of, go_bool_flags, parse
from dockweb.runtime.errors import DockwebError

RUN = "run:cmd_run"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with ``command="run"``, one that knows only ``run`` and parses a
    ``run`` command line alike (building every subcommand costs about 10 ms a command)."""
    parser = Parser(prog="dockweb", description="A self-sufficient runtime for containers")
    parser.add_argument("--root", help="Store root (default: DOCKWEB_ROOT or the settings)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    if command == "run":
        parsers.add_run_command(sub)
        return parser

    parsers.add_pull(sub, "pull")
    parsers.add_ls(sub, "images")
    parsers.add_rm(sub, "rmi")
    parsers.add_tag(sub, "tag")
    parsers.add_history(sub, "history")
    parsers.add_transfer_commands(sub)

    image = sub.add_parser("image", help="Manage images")
    isub = image.add_subparsers(dest="image_command", metavar="COMMAND", parser_class=Parser)
    isub.required = True
    parsers.add_pull(isub, "pull")
    parsers.add_ls(isub, "ls", aliases=("list",))
    parsers.add_rm(isub, "rm", aliases=("remove",))
    parsers.add_tag(isub, "tag")
    parsers.add_inspect(isub, "inspect")
    parsers.add_history(isub, "history")
    parsers.add_image_transfer_commands(isub)
    m = isub.add_parser("mount", help="Mount an image's root filesystem read-only; print its path")
    m.add_argument("image", metavar="IMAGE")
    m.set_defaults(func="images:cmd_mount")
    u = isub.add_parser("unmount", aliases=["umount"], help="Unmount an image's root filesystem")
    u.add_argument("images", nargs="+", metavar="IMAGE")
    u.set_defaults(func="images:cmd_unmount")
    parsers.add_container_commands(sub)
    parsers.add_system_commands(sub)
    parsers.add_build_commands(sub)
    return parser


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
    words = go_bool_flags(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser("run" if command_of(words) == "run" else None)
    args = parse(parser, words)
    if args.root:
        os.environ["DOCKWEB_ROOT"] = os.path.abspath(args.root)
    if args.func == RUN:
        from dockweb.cli import fastrun  # the chosen command's module, as below

        try:
            code = fastrun.run(args, list(sys.argv[1:] if argv is None else argv))
        except KeyboardInterrupt:  # Ctrl-C with --sig-proxy=false: as the ordinary path
            return 130
        if code is not None:
            return code
    setup_django()
    # The command's module, once Django is set up: it imports the apps' services.
    module, name = args.func.split(":")
    func = getattr(importlib.import_module(f"dockweb.cli.{module}"), name)
    from dockweb.docker.gofmt import FormatError  # here: the fast run path never formats

    gc.enable()
    try:
        code = func(args)
        audit(args, argv, code)
        return code
    except FormatError as err:
        print(err, file=sys.stderr)
        return 1
    except UsageError as err:
        print(err, file=sys.stderr)
        return 125
    except DockwebError as err:
        print(daemon_error(err), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
