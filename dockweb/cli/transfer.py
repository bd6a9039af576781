"""`dockweb save`, `load` and `push` (and their `image` aliases), as docker 20.10's CLI.

- save: ``-o FILE`` as docker/cli 28 writes it (dockweb.cli.output: checked, written under a
  temporary name, made 0600 and renamed when complete, so a failed save leaves no file);
  without ``-o`` the tarball goes to stdout, unless that is a terminal.
- load: ``-i FILE`` or stdin (refused when stdin is a terminal); progress only on a
  terminal (docker forces ``--quiet`` otherwise), then ``Loaded image: ...`` lines.
- push: ``Using default tag: latest`` for a bare name; errors that come after the push
  started are printed as the daemon's stream reports them (no "Error response from
  daemon" prefix), as docker does.
"""

from __future__ import annotations

import sys

from dockweb.cli.common import daemon_error, repository_name
from dockweb.cli.output import OutputError, archive_output
from dockweb.cli.progress import PullRenderer
from dockweb.runtime.errors import DockwebError, os_reason
from images import services


def cmd_save(args) -> int:
    try:
        with archive_output(args.output, "failed to save image") as out:
            services.save_images(args.images, out)
    except DockwebError as err:
        print(daemon_error(err), file=sys.stderr)
        return 1
    except OutputError as err:
        print(err, file=sys.stderr)
        return 1
    return 0


def cmd_load(args) -> int:
    if not args.input and sys.stdin.isatty():
        print("requested load from stdin, but stdin is empty", file=sys.stderr)
        return 1
    quiet = args.quiet or not sys.stdout.isatty()
    renderer = PullRenderer(sys.stdout, quiet=False)

    def on_output(event: dict) -> None:
        if event["kind"] == "message" or not quiet:
            renderer(event)

    try:
        if args.input:
            try:
                stream = open(args.input, "rb")
            except OSError as err:
                print(f"open {args.input}: {os_reason(err)}", file=sys.stderr)
                return 1
            with stream:
                services.load_images(stream, on_output=on_output, quiet=quiet)
        else:
            services.load_images(sys.stdin.buffer, on_output=on_output, quiet=quiet)
    except DockwebError as err:
        renderer.finish()
        print(daemon_error(err), file=sys.stderr)
        return 1
    renderer.finish()
    return 0


def cmd_push(args) -> int:
    named = repository_name(args.name, all_tags=args.all_tags)
    if named is None:
        return 1
    if named.is_name_only:
        print("Using default tag: latest", flush=True)
    renderer = PullRenderer(sys.stdout, quiet=args.quiet)
    try:
        result = services.push_image(args.name, on_progress=renderer)
    except DockwebError as err:
        renderer.finish()
        print(err, file=sys.stderr)
        return 1
    renderer.finish()
    if args.quiet:
        print(named.familiar_string() if named.tag else f"{named.familiar_name}:{result.tag}")
    return 0
