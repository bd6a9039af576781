"""``docker run`` / ``docker create`` options into a runtime ContainerSpec, as the docker
client parses them: sizes, --cpus, --tmpfs, --mount, --restart, --ulimit, -p, --add-host,
-v, -e, -l; the errors are docker's words.

Without Django: the CLI's fast ``run`` path (dockweb/cli/fastrun.py) uses it as
containers.services does.
"""

from __future__ import annotations

import os

from dockweb.runtime.errors import DockwebError

# For type checkers only, without importing typing (4 ms of the CLI's fast run path)
TYPE_CHECKING = False
if TYPE_CHECKING:

    from dockweb.runtime.containers import ContainerSpec, MountSpec


class InvalidOption(DockwebError):
    """A run/create option docker refuses before asking the daemon (bad -v, -e …)."""


class ClientOption(InvalidOption):
    """An option the docker client itself refuses while parsing (``docker: <error>.``,
    without the daemon's words)."""


class InvalidFlag(InvalidOption):
    """A flag value the docker client cannot parse: ``invalid argument "x" for "-m,
    --memory" flag: invalid size: 'x'`` (printed bare, with the help hint, status 125)."""

    def __init__(self, value: str, flag: str, reason: str) -> None:
        super().__init__(f'invalid argument "{value}" for "{flag}" flag: {reason}')


# -- options into a spec -----------------------------------------------------------------


_RAM_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40,
              "p": 1 << 50}


def parse_memory(value: str, flag: str = "-m, --memory") -> int:
    """A size as go-units RAMInBytes: ``512m``, ``1.5g``, ``1024`` (binary units, any
    case); InvalidFlag names ``flag``."""
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmMgGtTpPbB]?)[bB]?", value.strip())
    if not m:
        raise InvalidFlag(value, flag, f"invalid size: '{value}'")
    size = float(m.group(1)) * _RAM_UNITS[m.group(2).lower()]
    if not size < 2**63:  # past int64 (or inf): go's ParseFloat range error
        raise InvalidFlag(value, flag, f"invalid size: '{value}'")
    return int(size)


def parse_cpus(value: str) -> int:
    """--cpus: a decimal number of CPUs, as nano CPUs (docker's NanoCPUs)."""
    from decimal import Decimal, InvalidOperation

    try:
        cpus = Decimal(value)
        if not cpus.is_finite():  # inf, nan: big.Rat refuses them
            raise InvalidOperation
    except InvalidOperation:
        raise InvalidFlag(
            value, "--cpus", f"failed to parse {value} as a rational number"
        ) from None
    # past NanoCPUs' int64 (checked before multiplying: 1e999999999 would be a billion digits)
    if cpus.adjusted() > 9 or not -(2**63) <= cpus * 10**9 < 2**63:
        raise InvalidFlag(value, "--cpus", "value is out of range")
    if cpus and cpus.adjusted() < -9:  # below a nano CPU (before Decimal rounds it to 0)
        raise InvalidFlag(value, "--cpus", "value is too precise")
    nano = cpus * 10**9
    if nano != nano.to_integral_value():
        raise InvalidFlag(value, "--cpus", "value is too precise")
    return int(nano)


def parse_tmpfs(values: list[str]) -> dict[str, str]:
    """--tmpfs /dst[:options]."""
    out = {}
    for v in values:
        dest, _, options = v.partition(":")
        if not dest.startswith("/"):
            raise InvalidOption(
                f"invalid mount config for type \"tmpfs\": invalid mount path: '{dest}' "
                "mount path must be absolute"
            )
        out[dest] = options
    return out


def parse_mount_flag(value: str) -> tuple[MountSpec | None, tuple[str, str] | None]:
    """--mount type=volume|bind|tmpfs,source=…,target=…[,readonly][,tmpfs-size=…]
    [,tmpfs-mode=…], as docker/cli's MountOpt: a MountSpec, or a tmpfs (target, options).
    """
    import csv

    from dockweb.runtime.containers import MountSpec

    def bad(reason: str) -> InvalidFlag:
        return InvalidFlag(value, "--mount", reason)

    try:
        fields = next(csv.reader([value]))
    except (csv.Error, StopIteration):
        raise bad("invalid mount specification") from None
    kind, source, target = "volume", "", ""
    readonly = False
    tmpfs: list[str] = []
    for field_ in fields:
        key, eq, val = field_.partition("=")
        key = key.lower()
        if not eq and key in ("readonly", "ro"):
            readonly = True
            continue
        if not eq:
            raise bad(f"invalid field '{field_}' must be a key=value pair")
        if key == "type":
            kind = val.lower()
        elif key in ("source", "src"):
            source = os.path.abspath(val) if val == "." or val.startswith("./") else val
        elif key in ("target", "dst", "destination"):
            target = val
        elif key in ("readonly", "ro"):
            if val.lower() not in ("1", "t", "true", "0", "f", "false"):
                raise bad(f"invalid value for {key}: {val}")
            readonly = val.lower() in ("1", "t", "true")
        elif key == "tmpfs-size":
            try:
                tmpfs.append(f"size={parse_memory(val)}")
            except InvalidFlag:  # the whole --mount value is the flag's argument
                raise bad(f"invalid size: '{val}'") from None
        elif key == "tmpfs-mode":
            try:
                tmpfs.append(f"mode={int(val, 8):o}")
            except ValueError:
                raise bad(f"invalid value for {key}: {val}") from None
        elif key in ("bind-propagation", "consistency", "volume-nocopy", "volume-label",
                     "volume-driver", "volume-opt"):
            raise bad(f"dockweb does not support {key}")
        else:
            raise bad(f"unexpected key '{key}' in '{field_}'")
    if not kind:
        raise bad("type is required")  # type= given empty
    if not target:
        raise bad("target is required")
    if kind == "tmpfs":
        if source:
            raise ClientOption(
                'invalid mount config for type "tmpfs": source must not be specified'
            )
        return None, (target, ",".join((["ro"] if readonly else []) + tmpfs))
    if kind not in ("bind", "volume"):
        raise ClientOption(f'invalid mount config for type "{kind}": mount type unknown')
    if kind == "bind" and not source:
        raise ClientOption('invalid mount config for type "bind": field Source must not be empty')
    return MountSpec(kind, source, target, readonly, create_source=False), None


def parse_restart(value: str) -> dict:
    """--restart no|always|unless-stopped|on-failure[:N], as docker/cli's
    ParseRestartPolicy and dockerd's checks."""
    name, sep, count = value.partition(":")
    if not name:
        name = "no"
    if name not in ("no", "always", "unless-stopped", "on-failure"):
        raise InvalidOption(f"invalid restart policy '{name}'")
    retries = 0
    if sep:
        if name != "on-failure":
            raise InvalidOption(f"maximum retry count cannot be used with restart policy '{name}'")
        try:
            retries = int(count)
        except ValueError:
            raise ClientOption(f'strconv.Atoi: parsing "{count}": invalid syntax') from None
        if retries < 0:
            raise InvalidOption("maximum retry count cannot be negative")
    return {"Name": name, "MaximumRetryCount": retries}


def parse_ulimits(values: list[str]) -> list[dict]:
    """--ulimit name=soft[:hard], as go-units ParseUlimit (hard defaults to soft)."""
    from dockweb.runtime.oci import ULIMITS

    out = []
    for v in values:
        name, eq, limits = v.partition("=")
        if not eq:
            raise InvalidFlag(v, "--ulimit", f"invalid ulimit argument: {v}")
        if name not in ULIMITS:
            raise InvalidFlag(v, "--ulimit", f"invalid ulimit type: {name}")
        soft, _, hard = limits.partition(":")
        try:
            s_, h_ = int(soft), int(hard or soft)
        except ValueError:
            raise InvalidFlag(
                v, "--ulimit", f'invalid ulimit soft value "{limits}": not a number'
            ) from None
        if s_ > h_:
            raise InvalidFlag(
                v, "--ulimit", f"ulimit soft limit must be less than or equal to hard limit: "
                f"{s_} > {h_}"
            )
        out.append({"Name": name, "Hard": h_, "Soft": s_})
    return out


def parse_ports(values: list[str]) -> list[dict]:
    """-p values, as docker's nat.ParsePortSpecs (dockweb.runtime.ports)."""
    if not values:
        return []  # no import: `run`'s fast path
    from dockweb.runtime.ports import PortError, parse_publish

    out = []
    for v in values:
        try:
            out += [vars(b) for b in parse_publish(v)]
        except PortError as e:
            raise ClientOption(str(e)) from None
    return out


def parse_hosts(values: list[str]) -> list[str]:
    """--add-host name:ip (docker's ValidateExtraHost)."""
    if not values:
        return []
    import ipaddress

    out = []
    for v in values:
        name, sep, ip = v.partition(":")
        if not sep or not name:
            raise InvalidFlag(v, "--add-host", f'bad format for add-host: "{v}"')
        if ip != "host-gateway":  # the special value dockerd 20.10 resolves to the host
            try:
                ipaddress.ip_address(ip.strip("[]"))
            except ValueError:
                raise InvalidFlag(
                    v, "--add-host", f'invalid IP address in add-host: "{ip}"'
                ) from None
        out.append(v)
    return out


def parse_mount(value: str) -> MountSpec:
    """``-v``: ``name:/dst[:ro]``, ``/host:/dst[:ro|rw]`` or ``/dst`` (anonymous)."""
    from dockweb.runtime.containers import MountSpec

    parts = value.split(":")
    mode = ""
    if len(parts) == 3:
        source, target, mode = parts
    elif len(parts) == 2:
        source, target = parts
    elif len(parts) == 1:
        source, target = "", parts[0]
    else:
        raise InvalidOption(f"invalid volume specification: '{value}'")
    if mode not in ("", "ro", "rw"):
        raise InvalidOption(f"invalid mode: {mode}")
    if not target.startswith("/"):
        raise InvalidOption(
            f"invalid volume specification: '{value}': invalid mount config for type "
            f'"{"bind" if source.startswith("/") else "volume"}": invalid mount path: '
            f"'{target}' mount path must be absolute"
        )
    if target == "/":
        raise InvalidOption(
            f"invalid volume specification: '{value}': invalid mount config for type "
            "\"volume\": invalid specification: destination can't be '/'"
        )
    kind = "bind" if source.startswith("/") else "volume"
    return MountSpec(type=kind, source=source, target=target, readonly=mode == "ro")


def parse_env(values: list[str], environ: dict[str, str] | None = None) -> list[str]:
    """``-e``: ``KEY=VALUE`` kept; a bare ``KEY`` takes the caller's value, or is dropped."""
    environ = os.environ if environ is None else environ
    out = []
    for v in values:
        if not v or v.startswith("="):
            raise InvalidOption(f"invalid environment variable: {v}")
        if "=" in v:
            out.append(v)
        elif v in environ:
            out.append(f"{v}={environ[v]}")
    return out


def parse_security_opts(values: list[str]) -> list[str]:
    """--security-opt as docker/cli's parseSecurityOpts: ``key=value`` (or ``key:value``)
    or ``no-new-privileges``; ``seccomp=<file>`` is read here, by the client, and sent as
    ``seccomp=<the file's JSON, compacted>`` (``unconfined`` and ``builtin`` as they are)."""
    out = []
    for opt in values:
        key, eq, value = opt.partition("=")
        if not eq and key != "no-new-privileges":
            if ":" not in opt:
                raise ClientOption(f"Invalid --security-opt: {_go_quote(opt)}")
            key, _, value = opt.partition(":")
            eq = ":"
        if key == "seccomp" and value not in ("unconfined", "builtin"):
            try:
                with open(value, "rb") as f:
                    data = f.read()
            except OSError as e:
                from dockweb.runtime.errors import os_reason

                raise ClientOption(
                    f"opening seccomp profile ({value}) failed: open {value}: {os_reason(e)}"
                ) from None
            try:
                opt = "seccomp=" + compact_json(data.decode("utf-8", errors="replace"))
            except ValueError as e:
                raise ClientOption(
                    f"compacting json for seccomp profile ({value}) failed: {e}"
                ) from None
        out.append(opt)
    return out


def compact_json(text: str) -> str:
    """Go's json.Compact: the same JSON without insignificant white space (tokens, key
    order and escapes kept). ValueError (Go's words) for text that is not JSON."""
    import json

    from dockweb.runtime.seccomp import go_json_error

    try:
        json.loads(text)
    except ValueError as e:
        raise ValueError(go_json_error(text, e)) from None
    out = []
    in_string = escaped = False
    for ch in text:
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif ch not in " \t\n\r":
            out.append(ch)
    return "".join(out)


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_labels(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        key, _, value = v.partition("=")
        out[key] = value
    return out


def build_spec(
    image: str,
    cmd: list[str] | None = None,
    *,
    name: str = "",
    env: list[str] = (),
    volumes: list[str] = (),
    workdir: str = "",
    user: str = "",
    entrypoint: str | None = None,
    hostname: str = "",
    network: str = "default",
    network_alias: list[str] = (),
    ip: str = "",
    dns: list[str] = (),
    dns_search: list[str] = (),
    dns_option: list[str] = (),
    publish_all: bool = False,
    tty: bool = False,
    interactive: bool = False,
    auto_remove: bool = False,
    labels: list[str] = (),
    detach: bool = False,
    read_only: bool = False,
    cap_add: list[str] = (),
    cap_drop: list[str] = (),
    tmpfs: list[str] = (),
    add_host: list[str] = (),
    memory: str = "",
    cpus: str = "",
    pids_limit: int = 0,
    stop_signal: str = "",
    stop_timeout: int | None = None,
    publish: list[str] = (),
    mount: list[str] = (),
    shm_size: str = "",
    ulimit: list[str] = (),
    group_add: list[str] = (),
    restart: str = "",
    security_opt: list[str] = (),
    privileged: bool = False,
    health_cmd: str = "",
    health_interval: str = "",
    health_timeout: str = "",
    health_start_period: str = "",
    health_retries: str | int = "",
    no_healthcheck: bool = False,
) -> ContainerSpec:
    """A ContainerSpec from docker run's options, checked as the docker client checks them."""
    from dockweb.runtime.containers import ContainerSpec

    network = network or "default"
    network_mode = network  # HostConfig.NetworkMode: "default" without --network, as dockerd
    if network == "default":
        network = "bridge"
    if network.startswith("container:") and not network.split(":", 1)[1]:
        raise InvalidOption("invalid container format container:<name|id>")
    if ip:
        import ipaddress

        try:
            if ipaddress.ip_address(ip).version != 4:
                raise ValueError
        except ValueError:
            raise InvalidOption(f"invalid IPv4 address: {ip}") from None
    for server in dns:
        import ipaddress

        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise InvalidFlag(server, "--dns", f"{server} is not an ip address") from None
    if workdir and not workdir.startswith("/"):
        raise InvalidOption(
            f"the working directory '{workdir}' is invalid, it needs to be an absolute path"
        )
    policy = parse_restart(restart)  # "" is "no"
    if auto_remove and policy["Name"] != "no":
        raise ClientOption("Conflicting options: --restart and --rm")
    mounts = [parse_mount(v) for v in volumes]
    tmpfs_mounts = parse_tmpfs(list(tmpfs))
    for value in mount:
        spec, tmp = parse_mount_flag(value)
        if spec is not None:
            mounts.append(spec)
        else:
            tmpfs_mounts[tmp[0]] = tmp[1]
    return ContainerSpec(
        image=image,
        name=name,
        cmd=list(cmd) if cmd else None,
        entrypoint=None if entrypoint is None else ([entrypoint] if entrypoint else []),
        env=parse_env(list(env)),
        workdir=workdir,
        user=user,
        hostname=hostname,
        network=network,
        network_mode=network_mode,
        network_aliases=list(network_alias),
        ipv4=ip,
        dns=list(dns),
        dns_search=list(dns_search),
        dns_options=list(dns_option),
        publish_all=bool(publish_all) and network != "host",
        tty=tty,
        interactive=interactive,
        auto_remove=auto_remove,
        mounts=mounts,
        labels=parse_labels(list(labels)),
        detach=detach,
        read_only=read_only,
        cap_add=list(cap_add),
        cap_drop=list(cap_drop),
        tmpfs=tmpfs_mounts,
        extra_hosts=parse_hosts(list(add_host)),
        memory=parse_memory(memory) if memory else 0,
        nano_cpus=parse_cpus(cpus) if cpus else 0,
        pids_limit=max(int(pids_limit or 0), 0),
        stop_signal=stop_signal,
        stop_timeout=stop_timeout,
        ports=parse_ports(list(publish)) if network != "host" else [],
        shm_size=parse_memory(shm_size, "--shm-size") if shm_size else 0,
        ulimits=parse_ulimits(list(ulimit)),
        group_add=list(group_add),
        restart=policy,
        security_opt=parse_security_opts(list(security_opt)),
        privileged=bool(privileged),
        healthcheck=parse_healthcheck(
            health_cmd,
            health_interval,
            health_timeout,
            health_start_period,
            health_retries,
            no_healthcheck,
        ),
    )


def parse_duration_flag(value: str, flag: str) -> int:
    """A duration flag's value (Go's time.ParseDuration) in nanoseconds; "" is 0."""
    if not value:
        return 0
    from dockweb.runtime.units import DurationError, parse_go_duration

    try:
        return parse_go_duration(value)
    except DurationError as e:
        raise InvalidFlag(value, flag, str(e)) from None


def parse_healthcheck(
    cmd: str = "",
    interval: str = "",
    timeout: str = "",
    start_period: str = "",
    retries: str | int = "",
    no_healthcheck: bool = False,
) -> dict | None:
    """--health-cmd/-interval/-timeout/-start-period/-retries and --no-healthcheck, as
    docker/cli's parse: Config.Healthcheck (None: the image's), with its words."""
    durations = {
        "Interval": parse_duration_flag(interval, "--health-interval"),
        "Timeout": parse_duration_flag(timeout, "--health-timeout"),
        "StartPeriod": parse_duration_flag(start_period, "--health-start-period"),
    }
    text = str(retries)
    digits = text.lstrip("+-") if text[:1] in "+-" else text
    if text and not (digits.isascii() and digits.isdigit()):
        raise InvalidFlag(
            text, "--health-retries", f'strconv.ParseInt: parsing "{text}": invalid syntax'
        )
    count = int(text or 0)
    if not -(2**63) <= count < 2**63:
        raise InvalidFlag(
            text, "--health-retries", f'strconv.ParseInt: parsing "{text}": value out of range'
        )
    if no_healthcheck:
        if cmd or count or any(durations.values()):
            raise ClientOption("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not (cmd or count or any(durations.values())):
        return None
    for key, flag in (("Interval", "interval"), ("Timeout", "timeout")):
        if durations[key] < 0:
            raise ClientOption(f"--health-{flag} cannot be negative")
    if count < 0:
        raise ClientOption("--health-retries cannot be negative")
    if durations["StartPeriod"] < 0:
        raise ClientOption("--health-start-period cannot be negative")
    hc: dict = {"Test": ["CMD-SHELL", cmd]} if cmd else {}
    hc.update({k: v for k, v in durations.items() if v})
    if count:
        hc["Retries"] = count
    return hc
