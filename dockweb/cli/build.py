"""``dockweb build`` and ``dockweb commit``: docker 20.10's classic builder CLI
(DOCKER_BUILDKIT=0) and ``docker commit``, same flags, output and exit codes."""

from __future__ import annotations

import os
import sys

from dockweb.docker import run_options
from dockweb.runtime import reference as refs
from dockweb.runtime.build import BuildContext, BuildOptions
from dockweb.runtime.errors import BuildError, DockwebError
from dockweb.runtime.units import human_size
from images import services


def _unsupported(args) -> str:
    """The first docker build flag given that dockweb's builder does not have."""
    for flag in ("squash", "compress", "stream"):
        if getattr(args, flag, False):
            return f"--{flag}"
    for key, value in sorted(vars(args).items()):
        if key.startswith("unsupported_") and value:
            return "--" + key.removeprefix("unsupported_").replace("_", "-")
    return ""


def cmd_build(args) -> int:
    flag = _unsupported(args)
    if flag:
        print(
            f"dockweb build does not support {flag}; see 'dockweb build --help' for the "
            "options it has",
            file=sys.stderr,
        )
        return 125
    for tag in args.tag or []:
        try:
            ref = refs.parse_normalized_named(tag)
            if ref.digest:
                raise DockwebError("digest")
        except DockwebError:
            print(
                f'invalid argument "{tag}" for "-t, --tag" flag: invalid reference format\n'
                "See 'dockweb build --help'.",
                file=sys.stderr,
            )
            return 125
    context = args.context
    if not os.path.isdir(context):
        print(f'unable to prepare context: path "{context}" not found', file=sys.stderr)
        return 1
    dockerfile = args.file or os.path.join(context, "Dockerfile")
    if args.file == "-":
        text = sys.stdin.read()
        name = "Dockerfile"
    else:
        path = os.path.abspath(dockerfile)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            print(
                "unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                f"lstat {path}: no such file or directory",
                file=sys.stderr,
            )
            return 1
        name = os.path.relpath(path, os.path.abspath(context))
    build_args: dict[str, str | None] = {}
    for pair in args.build_arg or []:
        key, eq, value = pair.partition("=")
        # `--build-arg K` takes K from the environment, as the docker CLI does
        build_args[key] = value if eq else os.environ.get(key)
    labels: dict[str, str] = {}
    for pair in args.label or []:
        # the docker CLI's ConvertKVStringsToMap: "k=v", or "k" for an empty value
        key, _, value = pair.partition("=")
        labels[key] = value
    network = args.network
    if network not in ("default", "bridge", "host", "none"):
        print(
            f'Error response from daemon: network mode "{network}" not supported by '
            "dockweb's builder (default, bridge, host, none)",
            file=sys.stderr,
        )
        return 1
    try:
        extra_hosts = run_options.parse_hosts(list(args.add_host or []))
    except run_options.InvalidOption as e:
        print(f"{e}\nSee 'docker build --help'.", file=sys.stderr)
        return 125
    if args.iidfile:
        # the docker CLI: no stale file is left if the build fails
        try:
            os.remove(args.iidfile)
        except FileNotFoundError:
            pass
        except OSError as err:
            print(f"Removing image ID file: {err}", file=sys.stderr)
            return 1
    options = BuildOptions(
        dockerfile=text,
        context_dir=context,
        dockerfile_name=name,
        tags=list(args.tag or []),
        build_args=build_args,
        no_cache=args.no_cache,
        remove=args.rm,
        force_rm=args.force_rm,
        labels=labels,
        target=args.target,
        pull=args.pull,
        network=network,
        extra_hosts=extra_hosts,
        cache_from=[c for c in args.cache_from or [] if c],
    )
    started = False

    def out(text: str) -> None:
        nonlocal started
        started = True
        if not args.quiet:
            sys.stdout.write(text)
            sys.stdout.flush()

    if not args.quiet:
        size = BuildContext(context, name).size
        print(f"Sending build context to Docker daemon  {human_size(size)}", flush=True)
    try:
        result = services.build_image(options, on_output=out)
    except BuildError as err:
        # errors of a running step are streamed as they are; others come from the daemon
        print(err if started else f"Error response from daemon: {err}", file=sys.stderr)
        return err.exit_code
    if args.quiet:
        print(result.image_id)
    if args.iidfile:
        try:
            with open(args.iidfile, "w", encoding="utf-8") as f:
                f.write(result.image_id)
        except OSError as err:
            print(f"Writing image ID file: {err}", file=sys.stderr)
            return 1
    return 0


def cmd_commit(args) -> int:
    image_id = services.commit_container(
        args.container,
        args.repository or "",
        message=args.message or "",
        author=args.author or "",
        changes=args.change or [],
        pause=args.pause,
    )
    print(image_id)
    return 0
