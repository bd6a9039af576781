"""A build's context directory: ``.dockerignore`` patterns (moby's fileutils.PatternMatcher)
and ``BuildContext``, which finds, hashes and copies the sources of COPY and ADD;
``ImageSource``, the same for an image's or a stage's files (``COPY --from``)."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass

from dockweb.runtime import oci
from dockweb.runtime.errors import (
    DockwebError,
)

# -- .dockerignore ----------------------------------------------------------------------


@dataclass
class _Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern
    depth: int


def read_dockerignore(text: str) -> list[str]:
    """The patterns of a ``.dockerignore`` (moby's ``dockerignore.ReadAll``): comments and
    blank lines dropped, each pattern cleaned, a leading ``/`` removed."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        if neg:
            line = line[1:].strip()
        if line:
            line = os.path.normpath(line)
            if line.startswith("/") and len(line) > 1:
                line = line.lstrip("/") or "/"
            if line == ".":
                line = "."
        out.append(("!" if neg else "") + line)
    return out


class PatternMatcher:
    """moby's ``fileutils.PatternMatcher``: later patterns win, ``!`` re-includes, ``*`` and
    ``?`` never cross ``/``, ``**`` spans directories, a pattern matching a parent directory
    matches everything under it."""

    def __init__(self, patterns: list[str]):
        self.patterns: list[_Pattern] = []
        for p in patterns:
            exclusion = p.startswith("!")
            text = p[1:] if exclusion else p
            if not text:
                raise DockwebError('illegal exclusion pattern: "!"')
            self.patterns.append(
                _Pattern(text, exclusion, re.compile(_pattern_regex(text)), len(text.split("/")))
            )

    @property
    def exclusions(self) -> bool:
        return any(p.exclusion for p in self.patterns)

    def matches(self, path: str) -> bool:
        matched = False
        parent = os.path.dirname(path)
        parent_dirs = parent.split("/") if parent else []
        for p in self.patterns:
            match = bool(p.regex.match(path))
            if not match and parent and p.depth <= len(parent_dirs):
                match = bool(p.regex.match("/".join(parent_dirs[: p.depth])))
            if match:
                matched = not p.exclusion
        return matched


def _pattern_regex(pattern: str) -> str:
    out = "^"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if i + 1 < len(pattern) and pattern[i + 1] == "*":
                i += 2
                if i < len(pattern) and pattern[i] == "/":
                    i += 1
                out += ".*" if i >= len(pattern) else "(.*/)?"
                continue
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch in ".$":
            out += "\\" + ch
        elif ch == "\\":
            if i + 1 < len(pattern):
                out += "\\" + pattern[i + 1]
                i += 1
            else:
                out += "\\\\"
        else:
            out += ch
        i += 1
    return out + "$"


class BuildContext:
    """The files of a build context after ``.dockerignore``: ``paths`` (relative, ``/``
    separated) of every file, link and directory sent. The Dockerfile and ``.dockerignore``
    are always sent, as the docker CLI does, but left out of ``paths`` when ``.dockerignore``
    names them (the daemon removes them once read: moby's ``removeDockerfile``)."""

    def __init__(self, root: str | None, dockerfile_name: str = "Dockerfile"):
        self.root = os.path.abspath(root) if root else None
        self.paths: set[str] = set()
        self.size = 0  # bytes of the tar the docker CLI would send
        self.hardlinks: dict[str, str] = {}  # path -> the first path of its inode in the tar
        self._sums: dict[str, str] = {}
        if self.root is None:
            return
        patterns: list[str] = []
        ignore = os.path.join(self.root, ".dockerignore")
        if os.path.isfile(ignore):
            with open(ignore, encoding="utf-8", errors="replace") as f:
                patterns = read_dockerignore(f.read())
        matcher = PatternMatcher(patterns)
        # the CLI always sends these two; the daemon reads them and then removes them from
        # the context when .dockerignore names them (moby's removeDockerfile)
        keep = {".dockerignore", dockerfile_name.lstrip("./")}

        def walk(rel: str) -> None:
            for entry in sorted(os.scandir(os.path.join(self.root, rel)), key=lambda e: e.name):
                path = f"{rel}/{entry.name}" if rel else entry.name
                excluded = matcher.matches(path) and path not in keep
                is_dir = entry.is_dir(follow_symlinks=False)
                if excluded and not (is_dir and matcher.exclusions):
                    continue
                if not excluded:
                    if path not in keep or not matcher.matches(path):
                        self.paths.add(path)
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                        first = inodes.setdefault((st.st_dev, st.st_ino), path)
                        if first != path:
                            self.hardlinks[path] = first
                    self.size += 512 + (
                        -(-st.st_size // 512) * 512 if stat.S_ISREG(st.st_mode) else 0
                    )
                if is_dir:
                    walk(path)

        inodes: dict[tuple[int, int], str] = {}
        walk("")
        self.size += 1024

    def has(self, rel: str) -> bool:
        return rel in ("", ".") or rel in self.paths

    def abs(self, rel: str) -> str:
        assert self.root is not None
        return os.path.join(self.root, rel) if rel not in ("", ".") else self.root

    def children(self, rel: str) -> list[str]:
        prefix = "" if rel in ("", ".") else rel + "/"
        return sorted(p for p in self.paths if p.startswith(prefix) and "/" not in p[len(prefix) :])

    def hash(self, rel: str) -> str:
        """The COPY cache key's source part, as moby's copier computes it: ``file:<tarsum>``
        for a file (its target's, for a symlink), ``dir:<sha256>`` of the sorted, comma-joined
        sums of the directory and everything under it (not of the context root itself)."""
        try:
            is_dir = stat.S_ISDIR(os.stat(self.abs(rel)).st_mode)
        except OSError:
            is_dir = False  # a dangling symlink
        if not is_dir:
            return "file:" + self._hash(rel)
        top = os.path.relpath(oci.in_root(self.root, rel), self.root)
        top = "" if top == "." else top
        prefix = top + "/" if top else ""
        sums = [self._hash(p) for p in self.paths if p.startswith(prefix)]
        if top:
            sums.append(self._hash(top))
        return "dir:" + hashlib.sha256(",".join(sorted(sums)).encode()).hexdigest()

    def _hash(self, rel: str) -> str:
        """archiveContext.Hash: the tarsum of the path with its symlinks followed inside the
        context; the path itself when that is not a file of the context."""
        real = os.path.relpath(oci.in_root(self.root, rel), self.root)
        if real not in self.paths:
            return rel
        if real not in self._sums:
            self._sums[real] = self._tarsum(real)
        return self._sums[real]

    def _tarsum(self, rel: str) -> str:
        """tarsum v1 of one entry of the tar the docker CLI sends (FileInfoHeader, owners
        0:0): sha256 of the selected header fields (no mtime, uname/gname blank), then the
        file's bytes."""
        return tarsum_v1(
            self.abs(rel), rel, owners=(0, 0, "", ""), hardlink=self.hardlinks.get(rel, "")
        )


class ImageSource:
    """The root filesystem of an image or an earlier stage as the source of ``COPY --from``
    (moby's lazySource over the image's mount): the same methods as BuildContext, on a
    mounted tree. Paths are resolved with their symlinks followed inside the root, as
    moby's copier does; ``hash`` is moby's ``NewFileHash``: a tarsum v1 header from Go's
    ``tar.FileInfoHeader`` of the file as it is (its own owners, with the names the host's
    user and group databases give them, as dockerd's lookups do), then its bytes."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self._sums: dict[str, str] = {}

    def resolve(self, rel: str) -> str:
        """``rel`` with every symlink followed inside the root ("" for the root)."""
        real = os.path.relpath(oci.in_root(self.root, rel or "/"), self.root)
        return "" if real == "." else real

    def has(self, rel: str) -> bool:
        return rel in ("", ".") or os.path.lexists(self.abs(rel))

    def abs(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel not in ("", ".") else self.root

    def children(self, rel: str) -> list[str]:
        prefix = "" if rel in ("", ".") else rel + "/"
        return [prefix + name for name in sorted(os.listdir(self.abs(rel)))]

    def glob(self, pattern: str) -> list[str]:
        """Paths matching a pattern with ``*``, ``?`` or ``[`` in its last part (Go's
        filepath.Match on each entry of the directory before it)."""
        import fnmatch

        parent, _, last = pattern.rpartition("/")
        base = self.resolve(parent) if parent else ""
        if not os.path.isdir(self.abs(base)):
            return []
        names = [n for n in sorted(os.listdir(self.abs(base))) if fnmatch.fnmatchcase(n, last)]
        return [f"{base}/{n}" if base else n for n in names]

    def walk(self, rel: str) -> Iterator[str]:
        for child in self.children(rel):
            yield child
            if stat.S_ISDIR(os.lstat(self.abs(child)).st_mode):
                yield from self.walk(child)

    def hash(self, rel: str) -> str:
        """``file:<sum>`` for a file (its target's, for a symlink), ``dir:<sha256>`` of the
        sorted, comma-joined sums of the directory and everything under it, symlinks as their
        targets (moby's walkSource: the source root itself is left out)."""
        real = self.resolve(rel)
        if not stat.S_ISDIR(os.lstat(self.abs(real)).st_mode):
            return "file:" + self._hash(real)
        sums = []
        for p in [*self.walk(real), *([real] if real else [])]:
            # moby's lazySource.Hash resolves each path: a symlink sums as its target, a
            # dangling one is left out
            target = self.resolve(p)
            if os.path.lexists(self.abs(target)):
                sums.append(self._hash(target))
        return "dir:" + hashlib.sha256(",".join(sorted(sums)).encode()).hexdigest()

    def _hash(self, rel: str) -> str:
        if rel not in self._sums:
            self._sums[rel] = file_tarsum(self.abs(rel), rel)
        return self._sums[rel]


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


def _group_name(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


def file_tarsum(full: str, name: str) -> str:
    """moby's ``NewFileHash`` (tarsum v1 of ``archive.FileInfoHeader``) of one file: its
    own uid/gid and their names on this host (Go's tar.FileInfoHeader looks them up), no
    hard-link detection, a directory's name with a trailing ``/``."""
    st = os.lstat(full)
    owners = (st.st_uid, st.st_gid, _user_name(st.st_uid), _group_name(st.st_gid))
    return tarsum_v1(full, name, owners=owners)


def tarsum_v1(
    full: str, name: str, *, owners: tuple[int, int, str, str], hardlink: str = ""
) -> str:
    """tarsum v1 of one tar entry for the file at ``full`` named ``name``: sha256 of the
    selected header fields (no mtime; ``owners`` = uid, gid, uname, gname), then the file's
    bytes. ``hardlink``: the entry is a hard link to that name."""
    st = os.lstat(full)
    mode = st.st_mode
    size, link, major, minor = 0, "", 0, 0
    if hardlink:
        kind, link = "1", hardlink
    elif stat.S_ISREG(mode):
        kind, size = "0", st.st_size
    elif stat.S_ISDIR(mode):
        kind, name = "5", name + "/"
    elif stat.S_ISLNK(mode):
        kind, link = "2", os.readlink(full)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = "3" if stat.S_ISCHR(mode) else "4"
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(mode):
        kind = "6"
    else:
        kind = "0"
    uid, gid, uname, gname = owners
    header = (
        f"name{name}mode{mode}uid{uid}gid{gid}size{size}typeflag{kind}"
        f"linkname{link}uname{uname}gname{gname}"
        f"devmajor{major}devminor{minor}"
    )
    h = hashlib.sha256(header.encode("utf-8", "surrogateescape"))
    if kind == "0" and size:
        with open(full, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
