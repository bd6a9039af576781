"""A container's file systems: its planned mounts and init layer (at create), the overlay
root file system, and what each start writes fresh for the runtime (seeded volumes, /etc
files, the bundle's ``config.json``)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets

from dockweb.runtime import apparmor, oci, overlay, syscalls
from dockweb.runtime.containers.spec import ContainerSpec, parse_security_opt
from dockweb.runtime.containers.state import Container, read_text, write_json_atomic
from dockweb.runtime.crashpoint import crashpoint
from dockweb.runtime.errors import ContainerStartError, InvalidContainerSpec, OverlayMountError
from dockweb.runtime.store import is_mountpoint


class RootfsMixin:
    """``ContainerManager``'s mounts and root file system."""

    def _plan_mounts(self, spec: ContainerSpec, cfg: dict) -> list[dict]:
        out: list[dict] = []
        seen = set()
        for m in spec.mounts:
            target = os.path.normpath(m.target) if m.target else ""
            if not target.startswith("/") or target == "/":
                raise InvalidContainerSpec(
                    f"invalid volume specification: '{m.source}:{m.target}': invalid mount "
                    "config for type \"{m.type}\": invalid specification: destination can't be '/'"
                    if target == "/"
                    else f"invalid volume specification: '{m.source}:{m.target}'"
                )
            if target in seen:
                raise InvalidContainerSpec(f"Duplicate mount point: {target}")
            seen.add(target)
            if m.type == "bind":
                if not m.source.startswith("/"):
                    raise InvalidContainerSpec(
                        f'invalid mount config for type "bind": invalid mount path: '
                        f"'{m.source}' mount path must be absolute"
                    )
                if not m.create_source and not os.path.exists(m.source):
                    raise InvalidContainerSpec(
                        'invalid mount config for type "bind": bind source path does not '
                        f"exist: {m.source}"
                    )
                out.append(
                    {
                        "type": "bind",
                        "name": "",
                        "source": m.source,
                        "destination": target,
                        "rw": not m.readonly,
                        "anonymous": False,
                        # -v makes a missing source again at each start; --mount does not
                        "create": m.create_source,
                    }
                )
            elif m.type == "volume":
                name = m.source or secrets.token_hex(32)
                out.append(
                    {
                        "type": "volume",
                        "name": name,
                        "source": "",
                        "destination": target,
                        "rw": not m.readonly,
                        "anonymous": not m.source,
                    }
                )
            else:
                raise InvalidContainerSpec(f"invalid mount type: {m.type}")
        for target in sorted(cfg.get("Volumes") or {}):
            target = os.path.normpath(target)
            if target not in seen:
                seen.add(target)
                out.append(
                    {
                        "type": "volume",
                        "name": secrets.token_hex(32),
                        "source": "",
                        "destination": target,
                        "rw": True,
                        "anonymous": True,
                    }
                )
        return out

    @staticmethod
    def _make_init_layer(init: str) -> None:
        """The files and mount points Docker's init layer holds (daemon/initlayer), so that
        the runtime's mount points never show in ``diff``."""
        for d in ("dev/pts", "dev/shm", "proc", "sys", "etc"):
            os.makedirs(os.path.join(init, d), exist_ok=True)
        for f in (".dockerenv", "etc/resolv.conf", "etc/hosts", "etc/hostname", "dev/console"):
            with open(os.path.join(init, f), "w"):
                pass
        os.chmod(os.path.join(init, ".dockerenv"), 0o755)
        os.symlink("/proc/mounts", os.path.join(init, "etc/mtab"))

    # -- rootfs ---------------------------------------------------------------------------

    def _lower_dirs(self, c: Container) -> list[str]:
        """Absolute lower dirs, top first: the init layer, then the image's layers."""
        rec = self.store.get_image(c.image_id)
        return [os.path.join(self.cdir(c.id), "init")] + [
            self.store.layer_diff(ch) for ch in reversed(rec.layers)
        ]

    def _init_link(self, cid: str) -> str:
        link = os.path.join(self.store.links_dir, "C" + cid[:25].upper())
        if not os.path.lexists(link):
            os.symlink(os.path.join("..", "containers", cid, "init"), link)
        return os.path.join("l", os.path.basename(link))

    def mount_rootfs(self, c: Container) -> str:
        """Mount the container's root filesystem (overlay of the image, the init layer and
        the writable layer) at ``rootfs/``. Idempotent."""
        target = os.path.join(self.cdir(c.id), "rootfs")
        if is_mountpoint(target):
            return target
        rec = self.store.get_image(c.image_id)
        lowers = [self._init_link(c.id)] + [
            os.path.join("l", self.store.get_layer(ch).link) for ch in reversed(rec.layers)
        ]
        rel = os.path.join("containers", c.id)
        # --rm: the writable layer goes when the process ends, so it need not survive a
        # crash; "volatile" (Linux 5.10) spares its unmount a sync of the store's whole file
        # system (7 to 10 ms), as podman mounts --rm containers.
        for volatile in (True, False) if c.spec.auto_remove else (False,):
            try:
                overlay.mount(
                    target,
                    lowers,
                    root=self.root,
                    upper=f"{rel}/upper",
                    work=f"{rel}/work",
                    volatile=volatile,
                    direct=True,
                )
                return target
            except OverlayMountError as e:
                if volatile:  # an older kernel: without
                    continue
                raise ContainerStartError(f"mount rootfs of {c.id}: {e}", 125) from e
        return target

    def _unmount_rootfs(self, cid: str) -> None:
        target = os.path.join(self.cdir(cid), "rootfs")
        if is_mountpoint(target):
            with contextlib.suppress(OSError):  # as `umount -l` failing: nothing to do
                syscalls.unmount(target)

    # -- bundle ---------------------------------------------------------------------------

    def _prepare(self, c: Container) -> None:
        """Everything the runtime needs, written fresh at each start as Docker does: rootfs
        mount, seeded volumes, working directory, /etc files and the bundle's config.json."""
        cdir = self.cdir(c.id)
        rootfs = self.mount_rootfs(c)
        crashpoint("container.start.mounted")
        for m in c.mounts:
            if m["type"] == "volume":
                # made at create; again only if removed since (no event: not a create)
                self.volumes.create(m["name"], anonymous=m["anonymous"], event=False)
                src = oci.in_root(rootfs, m["destination"])
                self.volumes.seed(m["name"], src)
            elif m["type"] == "bind" and not os.path.exists(m["source"]):
                if not m.get("create", True):
                    raise InvalidContainerSpec(
                        'invalid mount config for type "bind": bind source path does not '
                        f"exist: {m['source']}"
                    )
                os.makedirs(m["source"], exist_ok=True)  # -v creates a missing host dir
        crashpoint("container.start.volumes")
        user = oci.resolve_user(
            rootfs,
            c.spec.user
            or ((self.store.get_image(c.image_id).config.get("config") or {}).get("User") or ""),
        )
        if c.spec.group_add:
            oci.add_groups(rootfs, user, c.spec.group_add)
        cfg = self.store.get_image(c.image_id).config.get("config") or {}
        workdir = c.spec.workdir or cfg.get("WorkingDir") or "/"
        wd = oci.in_root(rootfs, workdir)
        if not os.path.exists(wd):
            os.makedirs(wd, mode=0o755, exist_ok=True)
        etc = self._write_etc_files(c)
        env = oci.process_env(
            oci.merge_env(cfg.get("Env") or [], c.spec.env), c.hostname, c.spec.tty
        )
        mounts = [
            {
                "destination": m["destination"],
                "type": "bind",
                "source": m["source"],
                "options": ["rbind", "rprivate"] + ([] if m["rw"] else ["ro"]),
            }
            for m in c.mounts
        ]
        if c.spec.privileged:
            caps = oci.privileged_capabilities()
        else:
            caps = oci.capabilities(c.spec.cap_add, c.spec.cap_drop)
        security = parse_security_opt(c.spec.security_opt)
        try:
            apparmor_profile = apparmor.container_profile(security.apparmor, c.spec.privileged)
        except apparmor.AppArmorError as e:
            raise ContainerStartError(str(e), 125) from None
        spec = oci.runtime_spec(
            rootfs=rootfs,
            args=[c.path, *c.args],
            env=env,
            cwd=workdir,
            user=user,
            hostname=c.hostname,
            tty=c.spec.tty,
            network=c.spec.network,
            netns_path=self.netns_path(c),
            cgroups_path=f"dockweb/{c.id}",
            etc_files=etc,
            mounts=mounts,
            read_only=c.spec.read_only,
            capabilities=caps,
            tmpfs=c.spec.tmpfs,
            resources=oci.resources(
                memory=c.spec.memory, nano_cpus=c.spec.nano_cpus, pids_limit=c.spec.pids_limit
            ),
            shm_size=c.spec.shm_size,
            rlimits=oci.rlimits(c.spec.ulimits),
            no_new_privileges=security.no_new_privileges,
            seccomp=oci.seccomp(security.seccomp, privileged=c.spec.privileged, bounding=caps),
            apparmor_profile=apparmor_profile,
            privileged=c.spec.privileged,
        )
        # rewritten at every start, read by the runtime right after: no need to survive a crash
        write_json_atomic(os.path.join(cdir, "bundle", "config.json"), spec, durable=False)
        crashpoint("container.start.config")

    def _write_etc_files(self, c: Container) -> dict[str, str]:
        cdir = self.cdir(c.id)
        paths = {
            "/etc/hostname": os.path.join(cdir, "hostname"),
            "/etc/hosts": os.path.join(cdir, "hosts"),
            "/etc/resolv.conf": os.path.join(cdir, "resolv.conf"),
        }
        with open(paths["/etc/hostname"], "w") as f:
            f.write(c.hostname + "\n")
        mode = c.spec.network
        if mode == "host":
            hosts = read_text("/etc/hosts") or oci.HOSTS_LOCAL
            resolv = read_text("/etc/resolv.conf")
        elif mode.startswith("container:"):  # the other container's, as dockerd shares them
            other = self.cdir(self.get(mode.split(":", 1)[1]).id)
            hosts = read_text(os.path.join(other, "hosts")) or oci.HOSTS_LOCAL
            resolv = read_text(os.path.join(other, "resolv.conf"))
        elif mode == "none":
            hosts = oci.HOSTS_LOCAL
            resolv = _filter_resolv(read_text("/etc/resolv.conf"))
        else:  # a bridge network: the embedded DNS (its supervisor adds the addresses)
            hosts = oci.HOSTS_LOCAL
            resolv = embedded_resolv(read_text("/etc/resolv.conf"), c.spec)
        for entry in c.spec.extra_hosts:  # --add-host name:ip, as dockerd appends them
            name, _, ip = entry.partition(":")
            if ip == "host-gateway":  # the default bridge's gateway: the host, as dockerd's
                ip = self.networks.get("bridge").gateway
            hosts += f"{ip}\t{name}\n"
        with open(paths["/etc/hosts"], "w") as f:
            f.write(hosts)
        with open(paths["/etc/resolv.conf"], "w") as f:
            f.write(resolv)
        for p in paths.values():
            os.chmod(p, 0o644)
        return paths


def embedded_resolv(host_text: str, spec) -> str:
    """resolv.conf of a container on a bridge network: the embedded DNS at 127.0.0.11,
    the host's search domains (or --dns-search), ``ndots:0`` and --dns-option, as dockerd
    writes it for user-defined networks."""
    search = list(spec.dns_search) or [
        d for ln in host_text.splitlines() if re.match(r"^\s*search\s", ln) for d in ln.split()[1:]
    ]
    out = "nameserver 127.0.0.11\n"
    if search:
        out += "search " + " ".join(search) + "\n"
    out += "options " + " ".join(["ndots:0", *spec.dns_options]) + "\n"
    return out


def _filter_resolv(text: str) -> str:
    """Drop localhost nameservers (unreachable from a new netns); Google's if none is left,
    as Docker's resolvconf.FilterResolvDNS does."""
    lines = [ln for ln in text.splitlines() if not re.match(r"^\s*nameserver\s+(127\.|::1\b)", ln)]
    if not any(re.match(r"^\s*nameserver\s", ln) for ln in lines):
        lines += ["nameserver 8.8.8.8", "nameserver 8.8.4.4"]
    return "\n".join(lines).strip("\n") + "\n"
