"""Local volumes, as Docker's ``local`` driver keeps them: ``<root>/volumes/<name>/_data``.

A volume's metadata (``volume.json``: name, created, labels, anonymous) sits beside its
``_data``. Which containers use a volume is not stored here: the caller passes a function
that answers it (the ContainerManager does), so a volume in use is never removed.

Crash safety: a volume appears whole (it is made in ``.creating-<pid>-*`` and renamed into
place) and disappears whole (renamed to ``.deleted-*`` first). Seeding holds the volume's
``seed.lock`` and leaves a ``seeding`` marker until the copy is complete: a volume with the
marker counts as empty, so a copy cut short is done again, never taken for a seeded volume.
``reconcile`` clears what a crash left.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from dockweb.runtime import events, syscalls
from dockweb.runtime.crashpoint import crashpoint
from dockweb.runtime.errors import InvalidContainerSpec, VolumeInUse, VolumeNotFound

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Volume:
    """One volume. ``mountpoint`` is its ``_data`` directory on the host."""

    name: str
    mountpoint: str
    created_at: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    anonymous: bool = False
    driver: str = "local"
    scope: str = "local"


class VolumeManager:
    """Create, list and remove volumes under ``<root>/volumes``.

    ``users(name)`` returns the IDs of the containers (running or not) that mount the volume;
    without it every volume counts as unused.
    """

    def __init__(self, root: str, users: Callable[[str], list[str]] | None = None):
        self.root = os.path.abspath(root)
        self.dir = os.path.join(self.root, "volumes")
        os.makedirs(self.dir, exist_ok=True)
        self._users = users or (lambda name: [])

    def _path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def create(
        self,
        name: str = "",
        labels: dict[str, str] | None = None,
        *,
        anonymous: bool = False,
        event: bool = True,
    ) -> Volume:
        """Create a volume. Idempotent, as ``docker volume create x`` twice: an existing volume
        is returned unchanged. ``name=""`` makes an anonymous-style 64-hex name. ``event``:
        journal dockerd's ``create`` event (each time, as dockerd)."""
        if not name:
            name = secrets.token_hex(32)
        elif not _NAME.match(name):
            raise InvalidContainerSpec(
                f'create {name}: "{name}" includes invalid characters for a local volume name, '
                'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
                "directory, use absolute path"
            )
        vol = self._create(name, labels, anonymous)
        if event:
            events.volume(self.root, "create", vol.name)
        return vol

    def _create(self, name: str, labels: dict[str, str] | None, anonymous: bool) -> Volume:
        path = self._path(name)
        meta = os.path.join(path, "volume.json")
        if os.path.exists(meta):
            return self.get(name)
        vol = Volume(
            name=name,
            mountpoint=os.path.join(path, "_data"),
            created_at=_now(),
            labels=dict(labels or {}),
            anonymous=anonymous,
        )
        # made aside and renamed into place: a crash leaves a .creating-* dir, not a volume
        # without its metadata
        stage = os.path.join(self.dir, f".creating-{os.getpid()}-{secrets.token_hex(4)}")
        os.makedirs(os.path.join(stage, "_data"))
        with open(os.path.join(stage, "volume.json"), "w") as f:
            json.dump(asdict(vol), f)
        try:
            os.rename(stage, path)
        except OSError as e:
            shutil.rmtree(stage, ignore_errors=True)
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            if os.path.exists(meta):
                return self.get(name)  # created meanwhile by someone else
            with open(meta, "w") as f:  # a directory without metadata (older versions)
                json.dump(asdict(vol), f)
        return vol

    def get(self, name: str) -> Volume:
        try:
            with open(os.path.join(self._path(name), "volume.json")) as f:
                return Volume(**json.load(f))
        except (FileNotFoundError, NotADirectoryError):
            raise VolumeNotFound(f"No such volume: {name}") from None

    def exists(self, name: str) -> bool:
        return os.path.exists(os.path.join(self._path(name), "volume.json"))

    def list(self) -> list[Volume]:
        out = []
        for name in sorted(os.listdir(self.dir)):
            if name.startswith("."):
                continue  # being created or deleted
            with contextlib.suppress(VolumeNotFound):
                out.append(self.get(name))
        return out

    def users(self, name: str) -> list[str]:
        return list(self._users(name))

    def remove(self, name: str, force: bool = False) -> None:
        """Remove a volume and its data. Refuses one in use (even with ``force``, as Docker).

        ``force`` only makes a missing volume no error.
        """
        if not self.exists(name):
            if force:
                return
            raise VolumeNotFound(f"get {name}: no such volume")
        used = self.users(name)
        if used:
            raise VolumeInUse(f"remove {name}: volume is in use - [{', '.join(used)}]")
        doomed = os.path.join(self.dir, f".deleted-{name}-{secrets.token_hex(4)}")
        os.rename(self._path(name), doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        events.volume(self.root, "destroy", name)

    def prune(self, *, all: bool = False) -> tuple[list[str], int]:
        """Remove unused volumes; Docker 20.10 prunes named ones too (``all`` is accepted for
        the later API and changes nothing). Returns (names, reclaimed bytes)."""
        removed, space = [], 0
        for vol in self.list():
            if self.users(vol.name):
                continue
            size = dir_size(vol.mountpoint)
            try:
                self.remove(vol.name)
            except VolumeInUse:
                continue
            removed.append(vol.name)
            space += size
        return removed, space

    def seed(self, name: str, source: str) -> bool:
        """Copy ``source`` (a directory of the container's image) into the volume when the
        volume is empty, with ownership and modes, as Docker does for a new volume.
        Returns True when it copied.

        One seeder at a time per volume (``seed.lock``); the ``seeding`` marker stays until
        owner and mode are set, so a copy cut short by a crash is wiped and done again."""
        data = self.get(name).mountpoint
        marker = os.path.join(self._path(name), "seeding")
        with self._seed_lock(name, blocking=True):
            if os.path.exists(marker):
                _empty(data)  # a copy cut short: the volume was never seeded
            elif os.listdir(data):
                return False
            if not os.path.isdir(source) or os.path.islink(source):
                _unlink(marker)
                return False
            open(marker, "w").close()
            if os.listdir(source):
                proc = subprocess.run(
                    ["cp", "-a", "--", source + "/.", data + "/"], capture_output=True, text=True
                )
                if proc.returncode != 0:
                    raise InvalidContainerSpec(
                        f"copy image data to volume {name}: {proc.stderr.strip()}"
                    )
            crashpoint("volume.seed.copied")
            st = os.lstat(source)
            os.chown(data, st.st_uid, st.st_gid)
            os.chmod(data, st.st_mode & 0o7777)
            os.unlink(marker)
        return True

    @contextlib.contextmanager
    def _seed_lock(self, name: str, *, blocking: bool):
        """Yields whether the volume's seed lock was taken (always, when ``blocking``)."""
        fd = os.open(os.path.join(self._path(name), "seed.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def reconcile(self) -> list[str]:
        """Repair what a crash left: half-made and half-deleted volume directories go, and a
        volume whose seeding was cut short is emptied (the next container using it seeds it
        again, as a new volume). Returns the names of the volumes emptied. Safe while other
        processes use the volumes: it skips a creation whose process lives and a seeding whose
        lock is held."""
        emptied = []
        for entry in os.listdir(self.dir):
            path = os.path.join(self.dir, entry)
            if entry.startswith(".creating-"):
                pid = entry.split("-")[1]
                if pid.isdigit() and syscalls.pid_alive(int(pid)):
                    continue
                shutil.rmtree(path, ignore_errors=True)
            elif entry.startswith(".deleted-"):
                shutil.rmtree(path, ignore_errors=True)  # renamed away: nobody uses it
            elif os.path.exists(os.path.join(path, "seeding")):
                with self._seed_lock(entry, blocking=False) as taken:
                    if taken and os.path.exists(os.path.join(path, "seeding")):
                        data = os.path.join(path, "_data")
                        _empty(data)
                        os.chown(data, 0, 0)
                        os.chmod(data, 0o755)
                        os.unlink(os.path.join(path, "seeding"))
                        emptied.append(entry)
        return emptied


def _empty(path: str) -> None:
    for entry in os.listdir(path):
        p = os.path.join(path, entry)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        else:
            os.unlink(p)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def dir_size(path: str) -> int:
    """Size as moby's directory.Size counts it: apparent sizes of everything but directories,
    each hard-linked inode once."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            if os.path.isdir(os.path.join(dirpath, name)) and not os.path.islink(
                os.path.join(dirpath, name)
            ):
                continue
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
            total += st.st_size
    return total
