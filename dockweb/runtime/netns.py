"""The kernel side of dockweb's networks, all of it inside network namespaces dockweb makes.

Layout, per store (``/run/dockweb/<key>/netns/``):

- ``infra``: dockweb's own network namespace. It holds one Linux bridge per network in use
  (``dockweb0`` for the default ``bridge``, ``br-<id12>`` for the others), the host's side
  of every container's veth pair, and ``tap0``, the interface of a user-mode forwarder
  (``slirp4netns``) that reaches the host through ordinary sockets. Traffic from a bridge
  to the outside is masqueraded to ``tap0``'s address; traffic to the default bridge's
  gateway (``host-gateway``) is sent to the host's own address, so a server listening on
  the host's 0.0.0.0 answers, as with Docker; the host's loopback stays out of reach
  (``--disable-host-loopback``). Traffic between two bridges is dropped, as is every packet
  from an ``--internal`` network's bridge that would leave it.
- ``<container id>``: a running container's namespace, made before its process runs and
  named in its OCI config; it has a veth (``eth0``, ``eth1``...) per network.

Nothing here touches the host's own interfaces, routes or firewall: every ``ip`` and
``iptables`` command runs inside one of these namespaces (``nsenter --net=PATH``). The
``infra`` namespace and its forwarder exist while at least one container is attached; the
last detach removes them. Callers hold ``NetworkManager.locked()`` around every call.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time

from dockweb.runtime import syscalls
from dockweb.runtime.errors import DockwebError

TAP = "tap0"
SLIRP_CIDR = "10.0.2.0/24"  # slirp4netns's default: tap0 10.0.2.100, gateway 10.0.2.2
MTU = 1500


class NetworkSetupError(DockwebError):
    """A namespace, interface or forwarder could not be set up."""


def _run(cmd: list[str], *, input: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, input=input, capture_output=True, text=True)
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise NetworkSetupError(
            f"{cmd[0]} {' '.join(cmd[1:3])}: {msg[-1] if msg else proc.returncode}"
        )
    return proc


def ip_batch(ns: str, commands: list[str]) -> None:
    """``ip -batch`` inside the namespace bind-mounted at ``ns``."""
    if commands:
        _run(["nsenter", f"--net={ns}", "ip", "-batch", "-"], input="\n".join(commands) + "\n")


def host_address() -> str:
    """The host's own address that ``host-gateway`` reaches: the source address of its
    default route, else any global IPv4 address it has. "" when it has none."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.255", 9))  # no packet is sent: only the route is looked up
        addr = s.getsockname()[0]
        if not addr.startswith("127."):
            return addr
    except OSError:
        pass
    finally:
        s.close()
    with contextlib.suppress(OSError, ValueError):
        out = subprocess.run(
            ["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True
        ).stdout
        for line in out.splitlines():
            parts = line.split()
            if "inet" in parts:
                return parts[parts.index("inet") + 1].split("/")[0]
    return ""


def run_dir(root: str) -> str:
    """The store's directory on tmpfs (``/run/dockweb/<key>``): what a reboot clears."""
    import hashlib

    return os.path.join("/run/dockweb", hashlib.sha256(root.encode()).hexdigest()[:12])


def _is_mountpoint(path: str) -> bool:
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == path for line in f)
    except OSError:
        return False


class NetNamespaces:
    """The network namespaces of one store, under ``run_dir/netns``."""

    def __init__(self, run_dir: str):
        self.dir = os.path.join(run_dir, "netns")
        self.infra = os.path.join(self.dir, "infra")
        self.slirp_pid = os.path.join(self.dir, "slirp.pid")

    # -- namespaces -------------------------------------------------------------------------

    def _prepare_dir(self) -> None:
        """The directory is a private bind mount of itself, as ``ip netns`` makes
        /run/netns: a namespace file bind-mounted under a shared mount could be copied into
        the namespaces made after it."""
        os.makedirs(self.dir, exist_ok=True)
        if not _is_mountpoint(self.dir):
            try:
                syscalls.bind_private(self.dir)
            except OSError as e:
                raise NetworkSetupError(f"mount --bind {self.dir}: {e.strerror}") from None

    def _release_dir(self) -> None:
        """The directory's own mount undone once no namespace is kept under it (when the
        last attached container has gone): a machine that has run many stores, tests'
        included, would otherwise keep one mount per store, and every mount namespace a
        container gets copies them all."""
        below = self.dir + "/"
        try:
            with open("/proc/self/mountinfo") as f:
                if any(line.split()[4].startswith(below) for line in f):
                    return
        except OSError:
            return
        if _is_mountpoint(self.dir):
            with contextlib.suppress(OSError):
                syscalls.unmount(self.dir)

    def path(self, cid: str) -> str:
        return os.path.join(self.dir, cid)

    def exists(self, path: str) -> bool:
        return _is_mountpoint(path)

    def create(self, path: str) -> None:
        """A new network namespace, kept alive by a bind mount at ``path``, with its loopback
        up."""
        self._prepare_dir()
        if self.exists(path):
            self.destroy(path)
        with open(path, "w"):
            pass
        try:
            _run(["unshare", f"--net={path}", "ip", "link", "set", "lo", "up"])
        except BaseException:
            self.destroy(path)
            raise

    def destroy(self, path: str) -> None:
        """Unmount and remove ``path``; the namespace and its interfaces go with the last
        reference (a veth's peer in ``infra`` with it)."""
        with contextlib.suppress(OSError):
            syscalls.unmount(path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    # -- the infra namespace and its forwarder ----------------------------------------------

    def infra_up(self) -> bool:
        return self.exists(self.infra) and self._slirp_alive()

    def _slirp_alive(self) -> bool:
        try:
            with open(self.slirp_pid) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return False
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return b"slirp4netns" in f.read()
        except OSError:
            return False

    def ensure_infra(self, bridge_gateway: str) -> None:
        """Make ``infra`` with its forwarder and rules, unless it is up already.
        ``bridge_gateway`` is the default bridge's gateway: ``host-gateway``'s address."""
        if self.infra_up():
            return
        if self.exists(self.infra):  # the forwarder alone died: its namespace is whole
            self._start_slirp()
            return
        self.teardown_infra()
        self.create(self.infra)
        try:
            self._start_slirp()
            _run(
                [
                    "nsenter",
                    f"--net={self.infra}",
                    "sh",
                    "-c",
                    "echo 1 > /proc/sys/net/ipv4/ip_forward",
                ]
            )
            host = host_address()
            rules = [
                "*nat",
                f"-A POSTROUTING -o {TAP} -j MASQUERADE",
            ]
            if host:
                rules.append(
                    f"-A PREROUTING -d {bridge_gateway}/32 -j DNAT --to-destination {host}"
                )
            rules += [
                "COMMIT",
                "*filter",
                ":FORWARD ACCEPT [0:0]",
                ":DOCKWEB-ISOLATION-1 - [0:0]",
                ":DOCKWEB-ISOLATION-2 - [0:0]",
                "-A FORWARD -j DOCKWEB-ISOLATION-1",
                "COMMIT",
            ]
            _run(
                ["nsenter", f"--net={self.infra}", "iptables-restore", "--noflush"],
                input="\n".join(rules) + "\n",
            )
        except BaseException:
            self.teardown_infra()
            raise

    def _start_slirp(self) -> None:
        exe = shutil.which("slirp4netns")
        if not exe:
            raise NetworkSetupError(
                "slirp4netns is not installed: bridge networks need it (apt install slirp4netns)"
            )
        r, w = os.pipe()
        try:
            proc = subprocess.Popen(
                [
                    exe,
                    "--configure",
                    f"--mtu={MTU}",
                    "--disable-host-loopback",
                    f"--cidr={SLIRP_CIDR}",
                    f"--ready-fd={w}",
                    "--netns-type=path",
                    self.infra,
                    TAP,
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(self.dir, "slirp.log"), "ab"),
                pass_fds=(w,),
                start_new_session=True,  # outlives the supervisor that started it
            )
            os.close(w)
            w = -1
            deadline = time.monotonic() + 10
            ready = b""
            os.set_blocking(r, False)
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    ready = os.read(r, 1)
                except BlockingIOError:
                    time.sleep(0.002)
                    continue
                break
            if ready != b"1":
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                raise NetworkSetupError("slirp4netns did not come up (see netns/slirp.log)")
            with open(self.slirp_pid, "w") as f:
                f.write(str(proc.pid))
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)

    def teardown_infra(self) -> None:
        """Stop the forwarder, remove ``infra`` with its bridges."""
        if self._slirp_alive():
            with open(self.slirp_pid) as f, contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(f.read().strip()), signal.SIGTERM)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.slirp_pid)
        self.destroy(self.infra)
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.dir):
                if name.startswith("bridge-"):
                    os.unlink(os.path.join(self.dir, name))
        self._release_dir()

    # -- bridges and veth pairs -------------------------------------------------------------

    def ensure_bridge(self, net) -> None:
        """The bridge of ``net`` in ``infra`` with its gateway address, and its isolation
        rules (once)."""
        br = net.bridge_name
        mark = os.path.join(self.dir, f"bridge-{br}")
        if os.path.exists(mark) and self.exists(self.infra):
            return  # made in this namespace (a new one starts without marks)
        prefix = ipaddress.ip_network(net.subnet).prefixlen
        make = [
            f"link add {br} type bridge",
            f"link set {br} mtu {MTU}",
            f"addr add {net.gateway}/{prefix} dev {br}",
            f"link set {br} up",
        ]
        try:
            ip_batch(self.infra, make)
        except NetworkSetupError:
            # a failed attempt left a bridge without its rules or its mark: made again
            self._drop_bridge(net)
            ip_batch(self.infra, make)
        _run(
            ["nsenter", f"--net={self.infra}", "iptables-restore", "--noflush"],
            input="\n".join(["*filter", *_isolation_rules(net), "COMMIT"]) + "\n",
        )
        with open(mark, "w"):
            pass

    def remove_bridge(self, net) -> None:
        """The bridge of a removed network and its isolation rules, if ``infra`` still
        has them."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.dir, f"bridge-{net.bridge_name}"))
        if self.exists(self.infra):
            self._drop_bridge(net)

    def _drop_bridge(self, net) -> None:
        """The bridge and its rules gone from ``infra``, whatever of them is there."""
        for rule in _isolation_rules(net, delete=True):
            subprocess.run(
                ["nsenter", f"--net={self.infra}", "iptables", *rule.split()],
                capture_output=True,
            )
        subprocess.run(
            ["nsenter", f"--net={self.infra}", "ip", "link", "del", net.bridge_name],
            capture_output=True,
        )

    def plug(self, net, ep, ns: str, *, default_route: bool) -> None:
        """A veth pair: ``ep.host_ifname`` on ``net``'s bridge, ``ep.ifname`` in the
        container's namespace ``ns`` with the endpoint's address and MAC address."""
        prefix = ipaddress.ip_network(net.subnet).prefixlen
        ip_batch(
            self.infra,
            [
                f"link add {ep.host_ifname} mtu {MTU} type veth peer name {ep.ifname} "
                f"mtu {MTU} netns {ns}",
                f"link set {ep.host_ifname} master {net.bridge_name} up",
            ],
        )
        cmds = [
            f"link set {ep.ifname} address {ep.mac}",
            f"addr add {ep.ip}/{prefix} dev {ep.ifname}",
            f"link set {ep.ifname} up",
        ]
        if default_route:
            cmds.append(f"route replace default via {net.gateway} dev {ep.ifname}")
        ip_batch(ns, cmds)

    def unplug(self, ep) -> None:
        """Remove the veth pair of ``ep`` (both ends go)."""
        if self.exists(self.infra):
            subprocess.run(
                ["nsenter", f"--net={self.infra}", "ip", "link", "del", ep.host_ifname],
                capture_output=True,
            )


def _isolation_rules(net, *, delete: bool = False) -> list[str]:
    """dockerd's two-stage isolation for ``net``'s bridge, as iptables rule arguments
    (``-D`` ones with ``delete``): what leaves a bridge for another bridge is dropped (stage
    2 drops whatever goes out to any bridge); an internal network's traffic neither leaves
    nor enters it, nor reaches the namespace itself."""
    br = net.bridge_name
    if net.internal:
        rules = [
            ("-I", "DOCKWEB-ISOLATION-1", f"-i {br} ! -o {br} -j DROP"),
            ("-I", "DOCKWEB-ISOLATION-1", f"-o {br} ! -i {br} -j DROP"),
            ("-I", "INPUT", f"-i {br} -j DROP"),
        ]
    else:
        rules = [("-A", "DOCKWEB-ISOLATION-1", f"-i {br} ! -o {br} -j DOCKWEB-ISOLATION-2")]
    rules.append(("-A", "DOCKWEB-ISOLATION-2", f"-o {br} -j DROP"))
    return [f"{'-D' if delete else op} {chain} {spec}" for op, chain, spec in rules]
