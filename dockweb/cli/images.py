"""The image commands: pull, images (image ls), rmi, tag, image inspect, history, image
mount and unmount. Output and messages as docker 20.10's."""

from __future__ import annotations

import sys

from dockweb.cli.common import daemon_error, print_inspect, print_out, repository_name
from dockweb.cli.progress import PullRenderer
from dockweb.docker.filters import parse_filters
from dockweb.docker.formatter import format_rows
from dockweb.docker.images import history_rows, image_rows
from dockweb.runtime import reference as refs
from dockweb.runtime.errors import DockwebError, ImageNotFound
from images import services

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


def cmd_pull(args) -> int:
    named = repository_name(args.name, all_tags=args.all_tags)
    if named is None:
        return 1
    if named.is_name_only and not args.quiet:
        print("Using default tag: latest", flush=True)
    renderer = PullRenderer(sys.stdout, quiet=args.quiet)
    try:
        result = services.pull_image(args.name, platform=args.platform, on_progress=renderer)
    except DockwebError as err:
        renderer.finish()
        print(daemon_error(err), file=sys.stderr)
        return 1
    renderer.finish()
    print(result.reference)
    return 0


def cmd_images(args) -> int:
    try:
        filters = parse_filters(args.filter or [])
        if args.repository:
            filters.setdefault("reference", []).append(args.repository)
        summaries = services.list_images(all=args.all, filters=filters)
    except DockwebError as err:
        print(daemon_error(err), file=sys.stderr)
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
    print_out(format_rows(rows, fmt, IMAGE_HEADERS, type_name="*formatter.imageContext"))
    return 0


def cmd_rmi(args) -> int:
    errors = []
    fatal = False
    for name in args.images:
        try:
            records = services.remove_image(name, force=args.force, prune=not args.no_prune)
        except DockwebError as err:
            if isinstance(err, ImageNotFound):
                # the client turns the daemon's 404 into its own message, naming the
                # image as typed
                errors.append(f"Error: No such image: {name}")
            else:
                errors.append(daemon_error(err))
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


def cmd_tag(args) -> int:

    try:
        refs.parse_normalized_named(args.target)
    except DockwebError as err:
        print(f'Error parsing reference: "{args.target}" is not a valid repository/tag: {err}',
              file=sys.stderr)
        return 1
    try:
        services.tag_image(args.source, args.target)
    except DockwebError as err:
        print(daemon_error(err), file=sys.stderr)
        return 1
    return 0


def cmd_inspect(args) -> int:
    results = []
    errors = []
    for name in args.images:
        try:
            results.append(services.inspect_image(name))
        except DockwebError as err:
            if isinstance(err, ImageNotFound):
                errors.append(f"Error: No such image: {name}")
            else:
                errors.append(daemon_error(err))
    return print_inspect(results, errors, args.format)


def cmd_history(args) -> int:
    try:
        items = services.image_history(args.image)
    except DockwebError as err:
        print(daemon_error(err), file=sys.stderr)
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
    print_out(format_rows(rows, fmt, HISTORY_HEADERS, type_name="*image.historyContext"))
    return 0


def cmd_mount(args) -> int:
    try:
        print(services.mount_image(args.image))
    except DockwebError as err:
        print(daemon_error(err), file=sys.stderr)
        return 1
    return 0


def cmd_unmount(args) -> int:
    status = 0
    for name in args.images:
        try:
            services.unmount_image(name)
            print(name)
        except DockwebError as err:
            print(daemon_error(err), file=sys.stderr)
            status = 1
    return status
