"""Container files to and from the host: ``cp`` and ``export``."""

from __future__ import annotations

import sys

from containers import services
from dockweb.cli.common import daemon_error, print_error
from dockweb.cli.output import OutputError, archive_output
from dockweb.runtime import copy


def _split_cp_arg(arg: str) -> tuple[str, str]:
    """docker/cli splitCpArg: ``CONTAINER:PATH`` or a local path (absolute, or a first part
    starting with "." such as ``./a:b``)."""
    if arg.startswith("/"):
        return "", arg
    container, sep, path = arg.partition(":")
    if not sep or container.startswith("."):
        return "", arg
    return container, path


def cmd_export(args) -> int:
    try:
        with archive_output(args.output, "failed to export container") as out:
            services.export_container(args.container, out)
    except OutputError as err:
        print_error(str(err))
        return 1
    return 0


def cmd_cp(args) -> int:
    src_container, src = _split_cp_arg(args.src)
    dst_container, dst = _split_cp_arg(args.dst)
    if not src_container and not dst_container:
        print_error("must specify at least one container source")
        return 1
    if src_container and dst_container:
        print_error("copying between containers is not supported")
        return 1
    mgr = services.get_manager()
    try:
        if src_container:
            c, scope = mgr.scope(src_container)
            if dst == "-":
                with archive_output(None, "") as out:
                    copy.archive(scope, src or "/", out, container=src_container,
                                 follow=args.follow_link)
            else:
                copy.copy_out(scope, src or "/", dst, container=src_container,
                              follow=args.follow_link)
        else:
            c, scope = mgr.scope(dst_container)
            if src == "-":
                copy.extract(scope, sys.stdin.buffer, dst or "/", container=dst_container,
                             label=args.dst)
            else:
                copy.copy_in(scope, src, dst or "/", container=dst_container,
                             follow=args.follow_link)
    except copy.CopyError as err:
        print_error(daemon_error(err) if err.daemon else str(err))
        return 1
    except OutputError as err:
        print_error(str(err))
        return 1
    return 0
