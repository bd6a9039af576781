"""``dockweb system service [--time SECONDS] [URI]``: serve the Docker Engine API until
killed (SIGTERM, SIGINT) or, with ``--time``, after that many seconds without a request."""

from __future__ import annotations

import sys

from dockweb.cli.common import print_error


def cmd_service(args) -> int:
    from django.conf import settings

    from dockweb.dockerapi.server import serve

    uri = args.uri or settings.DOCKWEB_API_SOCKET
    if args.time < 0:
        print_error("dockweb: --time must be 0 (never) or a number of seconds")
        return 125

    def ready(address: str) -> None:
        print(f"dockweb: serving the Docker Engine API on {address}", file=sys.stderr, flush=True)
        if address.startswith("unix://"):
            print(f"DOCKER_HOST={address}", flush=True)

    try:
        serve(
            uri,
            idle_timeout=args.time,
            socket_mode=settings.DOCKWEB_API_SOCKET_MODE,
            socket_group=settings.DOCKWEB_API_SOCKET_GROUP or None,
            ready=ready,
        )
    except (OSError, ValueError) as err:
        print_error(f"dockweb: cannot serve on {uri}: {err}")
        return 1
    return 0
