"""What a container is asked to be: ``ContainerSpec`` and its mounts, dockerd's checks of
them, signal names, and Docker's random names."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal as signals
from dataclasses import dataclass, field

from dockweb.runtime import oci
from dockweb.runtime.errors import InvalidContainerSpec

NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")  # dockerd's valid container names


# -- names ----------------------------------------------------------------------------------

_ADJECTIVES = (
    "admiring adoring affectionate agitated amazing angry awesome beautiful blissful bold "
    "boring brave busy charming clever cool compassionate competent confident cranky crazy "
    "dazzling determined distracted dreamy eager ecstatic elastic elated elegant eloquent epic "
    "exciting fervent festive flamboyant focused friendly frosty funny gallant gifted goofy "
    "gracious great happy hardcore heuristic hopeful hungry infallible inspiring intelligent "
    "interesting jolly jovial keen kind laughing loving lucid magical modest musing mystifying "
    "naughty nervous nice nifty nostalgic objective optimistic peaceful pedantic pensive "
    "practical priceless quirky quizzical recursing relaxed reverent romantic sad serene sharp "
    "silly sleepy stoic strange stupefied suspicious sweet tender thirsty trusting unruffled "
    "upbeat vibrant vigilant vigorous wizardly wonderful xenodochial youthful zealous zen"
).split()

# Notable scientists and engineers, as Docker's generator uses.
_SURNAMES = (
    "agnesi albattani allen almeida antonelli archimedes ardinghelli aryabhata austin babbage "
    "banach bardeen bartik bassi beaver bell benz bhabha bhaskara blackburn blackwell bohr "
    "booth borg bose bouman boyd brahmagupta brattain brown buck burnell cannon carson cartwright "
    "cerf chandrasekhar chaplygin chatelet chatterjee chebyshev cohen clarke colden cori cray "
    "curie darwin davinci dewdney dhawan diffie dijkstra dirac driscoll dubinsky easley edison "
    "einstein elbakyan elgamal elion ellis engelbart euclid euler faraday feistel fermat fermi "
    "feynman franklin gagarin galileo galois gates gauss germain goldberg goldstine goldwasser "
    "golick goodall gould greider grothendieck haibt hamilton haslett hawking heisenberg hellman "
    "hermann herschel hertz heyrovsky hodgkin hofstadter hoover hopper hugle hypatia jackson "
    "jang jemison jennings jepsen johnson joliot jones kalam kapitsa kare keldysh keller kepler "
    "khayyam khorana kilby kirch knuth kowalevski lalande lamarr lamport leakey leavitt lederberg "
    "lehmann lewin lichterman liskov lovelace lumiere mahavira margulis matsumoto maxwell mayer "
    "mccarthy mcclintock mclaren mclean mcnulty meitner mendel mendeleev meninsky merkle mestorf "
    "mirzakhani montalcini moore morse moser murdock napier nash neumann newton nightingale "
    "nobel noether northcutt noyce panini pare pascal pasteur payne perlman pike poincare "
    "poitras proskuriakova ptolemy raman ramanujan rhodes ride ritchie robinson roentgen "
    "rosalind rubin saha sammet sanderson satoshi shamir shannon shaw shirley shockley shtern "
    "sinoussi snyder solomon spence stonebraker sutherland swanson swartz swirles taussig "
    "tesla tharp thompson torvalds tu turing varahamihira vaughan villani visvesvaraya volhard "
    "wescoff wilbur wiles williams williamson wilson wing wozniak wright wu yalow yonath zhukovsky"
).split()


def random_name(retry: int = 0) -> str:
    """``adjective_surname``; on a retry a digit is appended, as Docker's generator does.
    Steve Wozniak is not boring, so ``boring_wozniak`` is never produced."""
    while True:
        name = f"{secrets.choice(_ADJECTIVES)}_{secrets.choice(_SURNAMES)}"
        if name != "boring_wozniak":
            break
    if retry > 0:
        name += str(secrets.randbelow(10))
    return name


# -- specs and states -----------------------------------------------------------------------


@dataclass
class MountSpec:
    """``-v name:/dst[:ro]`` (volume), ``-v /host:/dst[:ro]`` (bind), ``-v /dst`` (anonymous
    volume: ``type="volume"``, ``source=""``)."""

    type: str
    source: str
    target: str
    readonly: bool = False
    # -v makes a missing bind source; --mount refuses it, as dockerd
    create_source: bool = True


@dataclass
class ContainerSpec:
    image: str
    name: str = ""
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    env: list[str] = field(default_factory=list)
    workdir: str = ""
    user: str = ""
    hostname: str = ""
    # the network mode: bridge (dockerd's default), none, host, container:<name|id>, or a
    # user-defined network's name
    network: str = "bridge"
    # the mode as given, for HostConfig.NetworkMode ("default": no --network; "" before
    # create's checks)
    network_mode: str = ""
    network_aliases: list[str] = field(default_factory=list)  # --network-alias
    ipv4: str = ""  # --ip
    dns: list[str] = field(default_factory=list)  # --dns: the embedded DNS's upstreams
    dns_search: list[str] = field(default_factory=list)  # --dns-search
    dns_options: list[str] = field(default_factory=list)  # --dns-option
    publish_all: bool = False  # -P: every exposed port on a random host port
    tty: bool = False
    interactive: bool = False
    auto_remove: bool = False
    mounts: list[MountSpec] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    detach: bool = False  # run -d: nothing attached (inspect's Config.Attach*)
    read_only: bool = False  # --read-only: the root file system mounted read-only
    cap_add: list[str] = field(default_factory=list)  # CAP_X names, or ALL
    cap_drop: list[str] = field(default_factory=list)
    tmpfs: dict[str, str] = field(default_factory=dict)  # --tmpfs /dst[:options]
    extra_hosts: list[str] = field(default_factory=list)  # --add-host name:ip
    memory: int = 0  # -m: bytes (0: no limit); swap twice that, as dockerd's default
    nano_cpus: int = 0  # --cpus times 1e9
    pids_limit: int = 0  # --pids-limit (0: none)
    stop_signal: str = ""  # --stop-signal: over the image's StopSignal
    stop_timeout: int | None = None  # --stop-timeout: stop's default seconds
    # -p: {container_port, proto, host_ip, host_port (0: any)}, see dockweb.runtime.ports
    ports: list[dict] = field(default_factory=list)
    # --restart: {"Name": no|always|unless-stopped|on-failure, "MaximumRetryCount": n}
    restart: dict = field(default_factory=lambda: {"Name": "no", "MaximumRetryCount": 0})
    shm_size: int = 0  # --shm-size bytes (0: 64 MiB)
    ulimits: list[dict] = field(default_factory=list)  # --ulimit {Name, Soft, Hard}
    group_add: list[str] = field(default_factory=list)  # --group-add names or numbers
    # --security-opt as HostConfig.SecurityOpt holds them: seccomp=unconfined|builtin|<JSON
    # text> (the client reads a file), apparmor=PROFILE, no-new-privileges[=BOOL], label=...
    security_opt: list[str] = field(default_factory=list)
    privileged: bool = False  # --privileged: every capability and device, no confinement
    # --health-* / Config.Healthcheck as Docker's JSON: {Test, Interval, Timeout,
    # StartPeriod, Retries} (ns); None: the image's (containers/health.py merges them)
    healthcheck: dict | None = None

    @classmethod
    def from_dict(cls, d: dict) -> ContainerSpec:
        d = dict(d)
        d["mounts"] = [MountSpec(**m) for m in d.get("mounts", [])]
        return cls(**d)


def parse_signal(sig: str | int) -> int:
    """``KILL``, ``SIGKILL`` or ``9`` → 9; Docker's ``Invalid signal: X`` otherwise."""
    if isinstance(sig, int):
        return sig
    s = sig.strip().upper()
    if s.isdigit():
        n = int(s)
        if 0 < n < 65:
            return n
    else:
        name = s if s.startswith("SIG") else "SIG" + s
        with contextlib.suppress(AttributeError):
            return int(getattr(signals.Signals, name))
    raise InvalidContainerSpec(f"Invalid signal: {sig}")


@dataclass
class SecurityOptions:
    """What ``--security-opt`` asks, as dockerd's parseSecurityOpt reads it."""

    no_new_privileges: bool = False
    seccomp: str = ""  # "" (the default profile), "unconfined", "builtin" or JSON text
    apparmor: str = ""  # "" (docker-default where the host has AppArmor)


_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_security_opt(opts: list[str]) -> SecurityOptions:
    """dockerd's parseSecurityOpt: ``no-new-privileges[=bool]``, ``seccomp=X``,
    ``apparmor=X``, ``label=X`` and ``disable`` (SELinux labels: nothing without SELinux);
    ``:`` is still read as ``=``. Raises InvalidContainerSpec with dockerd's words."""
    out = SecurityOptions()
    for opt in opts:
        if opt == "no-new-privileges":
            out.no_new_privileges = True
            continue
        if opt == "disable":
            continue
        if "=" in opt:
            key, _, value = opt.partition("=")
        elif ":" in opt:
            key, _, value = opt.partition(":")
        else:
            raise InvalidContainerSpec(f"invalid --security-opt 1: {_go_quote(opt)}")
        if key == "label":
            continue
        if key == "apparmor":
            out.apparmor = value
        elif key == "seccomp":
            out.seccomp = value
        elif key == "no-new-privileges" and value in _TRUE + _FALSE:
            out.no_new_privileges = value in _TRUE
        else:
            raise InvalidContainerSpec(f"invalid --security-opt 2: {_go_quote(opt)}")
    return out


def _go_quote(text: str) -> str:
    """Go's %q for printable text."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def check_host_config(spec: ContainerSpec) -> None:
    """dockerd's checks of what ``create`` asks beyond the image: capabilities, limits and
    the stop signal, with its words (the Run form makes them too, before queueing)."""
    for what, caps in (("CapAdd", spec.cap_add), ("CapDrop", spec.cap_drop)):
        for cap in caps:
            try:
                oci.normalize_capability(cap)
            except ValueError as e:
                raise InvalidContainerSpec(f"invalid {what}: {e}") from None
    if 0 < spec.memory < 6 * 1024 * 1024:
        raise InvalidContainerSpec("Minimum memory limit allowed is 6MB")
    if spec.nano_cpus:
        n = os.cpu_count() or 1
        if spec.nano_cpus < 10**7 or spec.nano_cpus > n * 10**9:
            raise InvalidContainerSpec(
                f"Range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available"
            )
    if spec.stop_signal:
        parse_signal(spec.stop_signal)  # "Invalid signal: X"
    parse_security_opt(spec.security_opt)
    check_healthcheck(spec.healthcheck)


MINIMUM_DURATION = 10**6  # 1ms: dockerd's container.MinimumDuration


def check_healthcheck(hc: dict | None) -> None:
    """dockerd's checks of a container's HealthConfig, with its words."""
    if not hc:
        return
    for key in ("Interval", "Timeout", "StartPeriod"):
        value = int(hc.get(key) or 0)
        if value and value < MINIMUM_DURATION:
            raise InvalidContainerSpec(f"{key} in Healthcheck cannot be less than 1ms")
    if int(hc.get("Retries") or 0) < 0:
        raise InvalidContainerSpec("Retries in Healthcheck cannot be negative")
