"""Build images from a Dockerfile as Docker 20.10's classic builder does (DOCKER_BUILDKIT=0),
and commit containers (``docker commit``).

Every instruction after ``FROM`` yields an image whose ``parent`` is the previous step's image:
these intermediate images stay in the store (``images -a`` lists them, ``history`` names them)
and are what the cache looks up. Guarantees:

- The cache is Docker's: a step is a hit when a child image of the current image has the same
  ``container_config`` (compared field by field as moby's ``compare``); that config carries
  the step's command (``/bin/sh -c #(nop)  ENV A=b``, ``/bin/sh -c echo hi``, with the build
  args in effect prefixed as ``|1 A=b``) and, for COPY/ADD, the sources' content hash. The
  cache therefore lives in the store and survives restarts; ``no_cache`` skips the lookup.
- A layer is made from a writable layer (a container's ``upper/`` or the upper dir of a
  private overlay mount for COPY/ADD) by writing its tar stream in overlay-diff form
  (whiteouts ``.wh.x``, opaque ``.wh..wh..opq``) deterministically (sorted names, numeric
  owners, whole-second times), hashing it (the DiffID) and applying it with
  ``archive.apply_layer`` into a layer scratch dir, committed with ``Store.commit_layer``. An
  empty writable layer adds no layer: the history entry says ``empty_layer`` (moby's
  ``NewChildImage``). A layer whose chain ID exists already is reused.
- Work in progress lives under ``<root>/builds/<random>/`` (never ``tmp/``, which a
  concurrent ``reconcile`` may empty) and is removed when the build ends, however it ends.
- Output is classic ``docker build``'s, line by line, through ``on_output(text)``.

Not done: multi-stage ``COPY --from``, ONBUILD triggers of a base image (they are kept in the
config, not run), ``security.capability`` xattrs in built layers.
"""

from __future__ import annotations

import bz2
import contextlib
import fnmatch
import gzip
import hashlib
import json
import lzma
import os
import platform
import re
import secrets
import shutil
import stat
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dockweb.runtime import oci, overlay
from dockweb.runtime import reference as refs
from dockweb.runtime.archive import apply_layer, untar
from dockweb.runtime.containers import ContainerSpec, Status
from dockweb.runtime.digest import sha256_digest, short_id
from dockweb.runtime.errors import (
    BuildError,
    ContainerStartError,
    DockwebError,
    ImageNotFound,
    LayerError,
    OverlayMountError,
)
from dockweb.runtime.store import ImageRecord, LayerRecord, Store
from dockweb.runtime.tarsplit import FILE_NAME as TAR_SPLIT

Output = Callable[[str], None]

DEFAULT_SHELL = ["/bin/sh", "-c"]
EMPTY_TAR_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"

# instructions the classic builder knows; anything else is "unknown instruction"
INSTRUCTIONS = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}  # fmt: skip
# build args every Dockerfile may use without declaring them (moby's builtinAllowedBuildArgs)
BUILTIN_ARGS = {
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
}  # fmt: skip

# container.Config as Go marshals it: field order, and the fields left out when empty
_OMIT = object()
_CONFIG_FIELDS = [
    ("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False),
    ("AttachStdout", False), ("AttachStderr", False), ("ExposedPorts", _OMIT), ("Tty", False),
    ("OpenStdin", False), ("StdinOnce", False), ("Env", None), ("Cmd", None),
    ("Healthcheck", _OMIT), ("ArgsEscaped", _OMIT), ("Image", ""), ("Volumes", None),
    ("WorkingDir", ""), ("Entrypoint", None), ("NetworkDisabled", _OMIT), ("MacAddress", _OMIT),
    ("OnBuild", None), ("Labels", None), ("StopSignal", _OMIT), ("StopTimeout", _OMIT),
    ("Shell", _OMIT),
]  # fmt: skip


# -- Dockerfile parsing ---------------------------------------------------------------------


@dataclass
class Instruction:
    """One instruction: ``name`` upper case, ``rest`` the text after it (flags removed),
    ``flags`` its ``--name=value`` flags, ``line`` where it starts (1-based), ``original``
    its source text as one line."""

    name: str
    rest: str
    line: int
    original: str
    flags: dict[str, str] = field(default_factory=dict)
    json_args: list[str] | None = None  # the JSON array form, when it is one


def _parse_error(line: int, message: str) -> BuildError:
    return BuildError(f"Dockerfile parse error line {line}: {message}", line=line)


def parse_dockerfile(text: str) -> tuple[list[Instruction], str]:
    """Split a Dockerfile into instructions as moby's parser does: parser directives
    (``# escape=``), comment lines, line continuations, JSON array forms and leading
    ``--flags``. Returns (instructions, escape token). Raises BuildError with the line."""
    lines = text.splitlines()
    escape = "\\"
    i = 0
    # parser directives: only at the very top, before any other line
    while i < len(lines):
        m = re.match(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$", lines[i])
        if not m:
            break
        if m.group(1).lower() == "escape":
            if m.group(2) not in ("\\", "`"):
                raise _parse_error(i + 1, f"invalid ESCAPE '{m.group(2)}'. Must be ` or \\")
            escape = m.group(2)
        i += 1
    out: list[Instruction] = []
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start = i + 1
        parts = []
        text_line = raw.lstrip()
        while True:
            body = text_line.rstrip()
            if body.endswith(escape) and not body.endswith(escape * 2):
                parts.append(body[:-1])
                i += 1
                # comment and empty lines inside a continuation are dropped (moby's parser)
                while i < len(lines) and (
                    not lines[i].strip() or lines[i].lstrip().startswith("#")
                ):
                    i += 1
                if i >= len(lines):
                    break
                text_line = lines[i]
                continue
            parts.append(text_line.rstrip() if text_line is not raw else body)
            i += 1
            break
        logical = "".join(parts).strip()
        out.append(_instruction(logical, start))
    return out, escape


def _instruction(logical: str, line: int) -> Instruction:
    word, _, rest = logical.partition(" ")
    if "\t" in word:
        word, _, tail = word.partition("\t")
        rest = tail + " " + rest
    name = word.upper()
    if name not in INSTRUCTIONS:
        raise _parse_error(line, f"unknown instruction: {name}")
    rest = rest.strip()
    flags: dict[str, str] = {}
    while rest.startswith("--"):
        token, _, remainder = rest.partition(" ")
        if token == "--":
            rest = remainder.strip()
            break
        key, eq, value = token[2:].partition("=")
        if not eq:
            raise _parse_error(line, f"Flag --{key} is missing a value")
        flags[key] = value
        rest = remainder.strip()
    allowed = {"COPY": {"chown", "from"}, "ADD": {"chown"}, "FROM": {"platform"}}
    for key in flags:
        if key not in allowed.get(name, set()) and not (name == "HEALTHCHECK"):
            raise _parse_error(line, f"Unknown flag: {key}")
    json_args = None
    if rest.startswith("["):
        with contextlib.suppress(ValueError):
            value = json.loads(rest)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                json_args = value
    return Instruction(name, rest, line, logical, flags, json_args)


# -- shell words and variables (moby's ShellLex) -----------------------------------------


def expand_word(word: str, env: dict[str, str], escape: str = "\\") -> str:
    """moby's ``ProcessWord``: ``$VAR``, ``${VAR}``, ``${VAR:-word}``, ``${VAR:+word}``
    expanded from ``env``; quotes removed; the escape character escapes the next one."""
    out = []
    i = 0
    n = len(word)

    def variable(j: int) -> tuple[str, int]:
        if j < n and word[j] == "{":
            end = word.find("}", j)
            if end < 0:
                raise DockwebError(f"missing '}}' in '{word}'")
            inner = word[j + 1 : end]
            m = re.match(r"^([A-Za-z0-9_]+)(?:(:?[-+])(.*))?$", inner, re.S)
            if not m:
                raise DockwebError(f'failed to process "{word}": bad substitution')
            name, op, arg = m.groups()
            value = env.get(name)
            if op in (":-", "-"):
                unset = value is None or (op == ":-" and value == "")
                return (expand_word(arg, env, escape) if unset else value), end + 1
            if op in (":+", "+"):
                isset = value is not None and (op == "+" or value != "")
                return (expand_word(arg, env, escape) if isset else ""), end + 1
            return value or "", end + 1
        m = re.match(r"[A-Za-z0-9_]+", word[j:])
        if not m:
            return "$", j
        return env.get(m.group(0), ""), j + m.end()

    while i < n:
        ch = word[i]
        if ch == escape:
            if i + 1 < n:
                out.append(word[i + 1])
            i += 2
        elif ch == "'":
            end = word.find("'", i + 1)
            if end < 0:
                raise DockwebError("unexpected end of statement while looking for matching '")
            out.append(word[i + 1 : end])
            i = end + 1
        elif ch == '"':
            i += 1
            while i < n and word[i] != '"':
                if word[i] == escape and i + 1 < n and word[i + 1] in ('"', "$", escape):
                    out.append(word[i + 1])
                    i += 2
                elif word[i] == "$":
                    value, i = variable(i + 1)
                    out.append(value)
                else:
                    out.append(word[i])
                    i += 1
            if i >= n:
                raise DockwebError('unexpected end of statement while looking for matching "')
            i += 1
        elif ch == "$":
            value, i = variable(i + 1)
            out.append(value)
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def split_words(text: str, escape: str = "\\") -> list[str]:
    """moby's ``parseWords``: split at whitespace outside quotes, keeping quotes and escapes."""
    words, cur, quote, i = [], [], "", 0
    while i < len(text):
        ch = text[i]
        if ch == escape and i + 1 < len(text) and quote != "'":
            cur.append(text[i : i + 2])
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch.isspace():
            if cur:
                words.append("".join(cur))
                cur = []
            i += 1
            continue
        cur.append(ch)
        i += 1
    if cur:
        words.append("".join(cur))
    return words


def _name_values(inst: Instruction, escape: str) -> list[tuple[str, str]]:
    """ENV and LABEL arguments: ``k=v k2=v2`` or the old ``k value with spaces``."""
    words = split_words(inst.rest, escape)
    if not words:
        raise _parse_error(inst.line, f"{inst.name} requires at least one argument")
    if "=" not in words[0]:
        key, _, value = inst.rest.partition(" ")
        if not value.strip():
            raise _parse_error(inst.line, f"{inst.name} must have two arguments")
        return [(key, value.strip())]
    pairs = []
    for w in words:
        if "=" not in w:
            raise _parse_error(
                inst.line,
                f'Syntax error - can\'t find = in "{w}". Must be of the form: name=value',
            )
        k, _, v = w.partition("=")
        if not k:
            raise _parse_error(inst.line, f"{inst.name} names can not be blank")
        pairs.append((k, v))
    return pairs


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
        full = self.abs(rel)
        st = os.lstat(full)
        mode = st.st_mode
        name, size, link, major, minor = rel, 0, "", 0, 0
        if rel in self.hardlinks:
            kind, link = "1", self.hardlinks[rel]
        elif stat.S_ISREG(mode):
            kind, size = "0", st.st_size
        elif stat.S_ISDIR(mode):
            kind, name = "5", rel + "/"
        elif stat.S_ISLNK(mode):
            kind, link = "2", os.readlink(full)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = "3" if stat.S_ISCHR(mode) else "4"
            major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            kind = "6"
        else:
            kind = "0"
        header = (
            f"name{name}mode{mode}uid0gid0size{size}typeflag{kind}linkname{link}"
            f"unamegnamedevmajor{major}devminor{minor}"
        )
        h = hashlib.sha256(header.encode("utf-8", "surrogateescape"))
        if kind == "0" and size:
            with open(full, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        return h.hexdigest()


# -- layer tar and layers ---------------------------------------------------------------


class _HashingFile:
    def __init__(self, f):
        self.f = f
        self.h = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.h.update(data)
        self.f.write(data)


def write_layer_tar(diff: str, out) -> None:
    """Write the tar stream of a writable layer in overlay form, as overlay2's ``Diff``:
    names sorted, directories first then their contents, 0/0 character devices as
    ``.wh.NAME`` files, opaque directories followed by ``.wh..wh..opq``, hard links as links
    to the first path, numeric owners, whole-second mtimes, no record padding (Go's tar)."""
    seen: dict[tuple[int, int], str] = {}

    def header(info: tarfile.TarInfo) -> None:
        info.uname = info.gname = ""
        out.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def walk(rel: str) -> None:
        base = os.path.join(diff, rel) if rel else diff
        for name in sorted(os.listdir(base)):
            path = f"{rel}/{name}" if rel else name
            full = os.path.join(base, name)
            st = os.lstat(full)
            info = tarfile.TarInfo(path)
            info.mode = stat.S_IMODE(st.st_mode)
            info.uid, info.gid = st.st_uid, st.st_gid
            info.mtime = st.st_mtime_ns // 1_000_000_000
            mode = st.st_mode
            if overlay.is_whiteout(st):
                info.name = f"{rel}/.wh.{name}" if rel else f".wh.{name}"
                info.type, info.mode, info.size = tarfile.REGTYPE, 0o600, 0
                header(info)
                continue
            if stat.S_ISDIR(mode):
                info.type = tarfile.DIRTYPE
                header(info)
                if overlay.is_opaque(full, userxattr=True):
                    wh = tarfile.TarInfo(f"{path}/.wh..wh..opq")
                    wh.mode, wh.uid, wh.gid, wh.mtime = info.mode, info.uid, info.gid, info.mtime
                    header(wh)
                walk(path)
                continue
            if stat.S_ISREG(mode) and st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    info.type, info.linkname, info.size = tarfile.LNKTYPE, seen[key], 0
                    header(info)
                    continue
                seen[key] = path
            if stat.S_ISREG(mode):
                info.size = st.st_size
                header(info)
                with open(full, "rb") as f:
                    left = st.st_size
                    while left > 0:
                        chunk = f.read(min(left, 1 << 20))
                        if not chunk:
                            raise DockwebError(f"commit layer: {path} shrank while being read")
                        out.write(chunk)
                        left -= len(chunk)
                if st.st_size % 512:
                    out.write(bytes(512 - st.st_size % 512))
            elif stat.S_ISLNK(mode):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(full)
                header(info)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
                info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                header(info)
            elif stat.S_ISFIFO(mode):
                info.type = tarfile.FIFOTYPE
                header(info)
            # sockets are skipped, as Go's archive does

    walk("")
    out.write(bytes(1024))


def layer_from_upper(
    store: Store, upper: str, parent_chain: str, work_dir: str
) -> LayerRecord | None:
    """Turn a writable layer directory into a committed layer on top of ``parent_chain``.

    Returns None when ``upper`` is empty (no layer: the step is an ``empty_layer``). The tar
    is written to ``work_dir`` while hashed (the DiffID), then applied into a layer scratch
    directory under the layer's lock and committed. Idempotent: an existing layer of the same
    chain ID is returned as it is.
    """
    if not os.listdir(upper):
        return None
    tar_path = os.path.join(work_dir, f"layer-{secrets.token_hex(4)}.tar")
    try:
        with open(tar_path, "w+b") as f:
            hashing = _HashingFile(f)
            write_layer_tar(upper, hashing)
            diff_id = "sha256:" + hashing.h.hexdigest()
            chain = sha256_digest(f"{parent_chain} {diff_id}".encode()) if parent_chain else diff_id
            if store.has_layer(chain):
                return store.get_layer(chain)
            lock = store.layer_lock(chain)
            try:
                lock.acquire()
                if store.has_layer(chain):
                    return store.get_layer(chain)
                scratch = store.new_layer_dir(chain)
                try:
                    f.seek(0)
                    # tar-split: save and push give back this very tar (its DiffID)
                    size = apply_layer(
                        f, os.path.join(scratch, "diff"), tar_split=os.path.join(scratch, TAR_SPLIT)
                    )
                    record = LayerRecord(
                        chain_id=chain, diff_id=diff_id, parent=parent_chain, size=size, link=""
                    )
                    return store.commit_layer(scratch, record)
                except BaseException:
                    shutil.rmtree(scratch, ignore_errors=True)
                    raise
            finally:
                lock.release()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tar_path)


@contextlib.contextmanager
def _rw_layer(store: Store, rec: ImageRecord | None, work_dir: str) -> Iterator[tuple[str, str]]:
    """A writable overlay over an image's layers (Docker's ``NewRWLayer``): yields
    (merged mount, upper dir); unmounted afterwards, the upper dir kept for the commit."""
    base = os.path.join(work_dir, f"rw-{secrets.token_hex(4)}")
    upper, work, merged = (os.path.join(base, d) for d in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        os.makedirs(d)
    lowers = (
        [os.path.join("l", store.get_layer(c).link) for c in reversed(rec.layers)] if rec else []
    )
    if not lowers:
        lowers = ["empty"]
    try:
        overlay.mount(merged, lowers, root=store.root, upper=upper, work=work)
    except OverlayMountError as e:
        raise BuildError(f"mount build layer: {e}") from e
    try:
        yield merged, upper
    finally:
        subprocess.run(["umount", merged], capture_output=True)


# -- image configs ----------------------------------------------------------------------


def now_rfc3339nano() -> str:
    ns = time.time_ns()
    base = datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return base + (f".{frac}" if frac else "") + "Z"


def ordered_config(cfg: dict) -> dict:
    """A container config with Go's field order (what dockerd writes into image configs)."""
    out = {}
    for key, default in _CONFIG_FIELDS:
        value = cfg.get(key, None if default is _OMIT else default)
        if default is _OMIT and not value:
            continue
        out[key] = value
    return out


def image_config_bytes(config: dict) -> bytes:
    """The image config as dockerd marshals it: top-level keys sorted, compact, the
    container configs in Go's field order."""
    top = {}
    for key in sorted(config):
        value = config[key]
        if key in ("config", "container_config"):
            value = ordered_config(value)
        top[key] = value
    return json.dumps(top, separators=(",", ":"), ensure_ascii=False).encode()


def _go_quote_list(items: list[str]) -> str:
    """Go's ``%q`` of a []string: ``["a" "b"]``."""
    return "[" + " ".join(json.dumps(s, ensure_ascii=False) for s in items) + "]"


def _compare(a: dict, b: dict) -> bool:
    """moby's ``compare`` of two container configs (the build cache's equality)."""
    for key in ("OpenStdin", "AttachStdout", "AttachStderr", "User", "Tty"):
        if (a.get(key) or None) != (b.get(key) or None):
            return False
    for key in ("Cmd", "Env", "Entrypoint"):
        if list(a.get(key) or []) != list(b.get(key) or []):
            return False
    for key in ("Labels", "ExposedPorts", "Volumes"):
        if dict(a.get(key) or {}) != dict(b.get(key) or {}):
            if key == "Labels" or set(a.get(key) or {}) != set(b.get(key) or {}):
                return False
    return True


def find_cached(store: Store, parent_id: str, container_config: dict) -> str | None:
    """The newest child image of ``parent_id`` ("" for scratch: images without a parent)
    built by an equal ``container_config``: moby's ``getLocalCachedImage``."""
    match = None
    for rec in store.images():
        if rec.parent != parent_id:
            continue
        cc = rec.config.get("container_config")
        if cc and _compare(cc, container_config):
            if match is None or match.created < rec.created:
                match = rec
    return match.id if match else None


# -- the builder ------------------------------------------------------------------------


@dataclass
class BuildOptions:
    dockerfile: str  # the Dockerfile's text
    context_dir: str | None = None
    dockerfile_name: str = "Dockerfile"
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str | None] = field(default_factory=dict)
    no_cache: bool = False
    remove: bool = True  # remove intermediate containers after a successful step
    force_rm: bool = False  # remove them even after a failed step


@dataclass
class StepResult:
    number: int
    instruction: str
    image_id: str
    cached: bool = False
    layer_size: int | None = None  # None: no layer (metadata only, or nothing changed)


@dataclass
class BuildResult:
    image_id: str
    tags: list[str]
    steps: list[StepResult]


class _State:
    def __init__(self):
        self.image: ImageRecord | None = None  # current image (None: scratch, nothing yet)
        self.base_config: dict = {}
        self.config: dict = {}  # the run config
        self.cmd_set = False
        self.author = ""
        self.args: dict[str, str | None] = {}  # ARGs declared so far (value or None)

    @property
    def image_id(self) -> str:
        return self.image.id if self.image else ""


class Builder:
    """One build. Use ``build()``; the class only keeps the build's state together."""

    def __init__(
        self,
        store: Store,
        manager,
        options: BuildOptions,
        *,
        on_output: Output | None = None,
        pull: Callable[[str, Output], None] | None = None,
    ):
        self.store = store
        self.manager = manager
        self.opts = options
        self.out = on_output or (lambda text: None)
        self.pull = pull
        self.state = _State()
        self.used_args: set[str] = set()
        self.meta_args: dict[str, str | None] = {}
        self.escape = "\\"
        self.context = BuildContext(options.context_dir, options.dockerfile_name)
        self.work_dir = os.path.join(store.root, "builds", secrets.token_hex(8))
        self.stages: dict[str, str] = {}
        self.disable_commit = False  # commit --change: dispatch to the config only

    # output helpers
    def _say(self, text: str) -> None:
        self.out(text + "\n")

    def run(self) -> BuildResult:
        instructions, self.escape = parse_dockerfile(self.opts.dockerfile)
        tags = [self._check_tag(t) for t in self.opts.tags]
        self._check_instructions(instructions)
        os.makedirs(self.work_dir)
        try:
            return self._run(instructions, tags)
        finally:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(self.work_dir))

    def _check_tag(self, tag: str) -> refs.Reference:
        try:
            ref = refs.parse_normalized_named(tag)
        except DockwebError:
            raise BuildError(
                f'invalid argument "{tag}" for "-t, --tag" flag: invalid reference format'
            ) from None
        if ref.digest:
            raise BuildError(
                f'invalid argument "{tag}" for "-t, --tag" flag: invalid reference format'
            )
        return ref

    def _check_instructions(self, instructions: list[Instruction]) -> None:
        seen_from = False
        for inst in instructions:
            if inst.name == "FROM":
                seen_from = True
            elif not seen_from and inst.name != "ARG":
                raise BuildError("No build stage in current context", line=inst.line)
        if not instructions:
            raise BuildError(f"the Dockerfile ({self.opts.dockerfile_name}) cannot be empty")
        if not seen_from:
            raise BuildError("No build stage in current context")

    def _run(self, instructions: list[Instruction], tags: list[refs.Reference]) -> BuildResult:
        steps: list[StepResult] = []
        first = next(i for i, inst in enumerate(instructions) if inst.name == "FROM")
        for inst in instructions[:first]:
            self._meta_arg(inst)  # ARGs before the first FROM are not steps
        body = instructions[first:]
        for n, inst in enumerate(body, 1):
            self._say(f"Step {n}/{len(body)} : {inst.original}")
            step = self._dispatch(n, inst)
            steps.append(step)
            self._say(f" ---> {short_id(step.image_id)}")
        unused = sorted(
            k for k in self.opts.build_args if k not in self.used_args and k not in BUILTIN_ARGS
        )
        if unused:
            self._say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed")
        image_id = self.state.image_id
        if not image_id:
            raise BuildError("No image was generated. Is your Dockerfile empty?")
        self._say(f"Successfully built {short_id(image_id)}")
        for ref in tags:
            self.store.add_reference(ref, image_id, force=True)
            self._say(f"Successfully tagged {ref.familiar_string()}")
        return BuildResult(image_id, [t.familiar_string() for t in tags], steps)

    # -- variables

    def _env(self) -> dict[str, str]:
        env = {}
        for k, v in self._arg_values().items():
            env[k] = v
        for e in self.state.config.get("Env") or []:
            k, _, v = e.partition("=")
            env[k] = v
        return env

    def _arg_values(self) -> dict[str, str]:
        """Declared ARGs with a value (from --build-arg or their default)."""
        out = {}
        for k, default in self.state.args.items():
            value = self.opts.build_args.get(k)
            value = default if value is None else value
            if value is not None:
                out[k] = value
        return out

    def _expand(self, word: str, inst: Instruction) -> str:
        try:
            return expand_word(word, self._env(), self.escape)
        except DockwebError as e:
            raise _parse_error(inst.line, str(e)) from None

    def _meta_arg(self, inst: Instruction) -> None:
        key, eq, value = inst.rest.partition("=")
        self.meta_args[key] = value if eq else None
        if key in self.opts.build_args:
            self.used_args.add(key)

    # -- dispatch

    def _dispatch(self, n: int, inst: Instruction) -> StepResult:
        handler = getattr(self, f"_do_{inst.name.lower()}")
        return handler(n, inst)

    def _do_from(self, n: int, inst: Instruction) -> StepResult:
        meta_env = {
            k: (self.opts.build_args.get(k) if k in self.opts.build_args else v) or ""
            for k, v in self.meta_args.items()
        }
        args = inst.rest.split()
        if len(args) == 3 and args[1].lower() == "as":
            name = args[2].lower()
        elif len(args) != 1:
            raise _parse_error(inst.line, "FROM requires either one or three arguments")
        else:
            name = ""
        base = expand_word(args[0], meta_env, self.escape)
        self.state = _State()
        if base.lower() == "scratch":
            self.state.config = {"Env": [f"PATH={oci.DEFAULT_PATH}"]}
            if name:
                self.stages[name] = ""
            return StepResult(n, inst.original, "")
        rec = self._base_image(base)
        self.state.image = rec
        self.state.config = dict(rec.config.get("config") or {})
        env = list(self.state.config.get("Env") or [])
        if not any(e.startswith("PATH=") for e in env):
            env.append(f"PATH={oci.DEFAULT_PATH}")
        self.state.config["Env"] = env
        if name:
            self.stages[name] = rec.id
        return StepResult(n, inst.original, rec.id)

    def _base_image(self, name: str) -> ImageRecord:
        if name in self.stages and self.stages[name]:
            return self.store.get_image(self.stages[name])
        try:
            return self.store.lookup(name)
        except ImageNotFound:
            if self.pull is None:
                raise
        self.pull(name, self.out)
        return self.store.lookup(name)

    # metadata instructions: a container is created (" ---> Running in"), nothing runs

    def _do_env(self, n: int, inst: Instruction) -> StepResult:
        pairs = _name_values(inst, self.escape)
        parts = ["ENV"]
        env = list(self.state.config.get("Env") or [])
        for k, v in pairs:
            k, v = self._expand(k, inst), self._expand(v, inst)
            env = oci.merge_env(env, [f"{k}={v}"])
            parts.append(f"{k}={v}")
        self.state.config["Env"] = env
        return self._commit(n, inst, " ".join(parts))

    def _do_label(self, n: int, inst: Instruction) -> StepResult:
        pairs = _name_values(inst, self.escape)
        labels = dict(self.state.config.get("Labels") or {})
        parts = ["LABEL"]
        for k, v in pairs:
            k, v = self._expand(k, inst), self._expand(v, inst)
            labels[k] = v
            parts.append(f"{k}={v}")
        self.state.config["Labels"] = labels
        return self._commit(n, inst, " ".join(parts))

    def _do_maintainer(self, n: int, inst: Instruction) -> StepResult:
        if not inst.rest:
            raise _parse_error(inst.line, "MAINTAINER requires exactly one argument")
        self.state.author = inst.rest
        return self._commit(n, inst, f"MAINTAINER {inst.rest}")

    def _cmd_line(self, inst: Instruction) -> list[str]:
        if inst.json_args is not None:
            return list(inst.json_args)
        if not inst.rest:
            return []
        return list(self.state.config.get("Shell") or DEFAULT_SHELL) + [inst.rest]

    def _do_cmd(self, n: int, inst: Instruction) -> StepResult:
        cmd = self._cmd_line(inst)
        self.state.config["Cmd"] = cmd
        self.state.cmd_set = True
        return self._commit(n, inst, f"CMD {_go_quote_list(cmd)}")

    def _do_entrypoint(self, n: int, inst: Instruction) -> StepResult:
        ep = self._cmd_line(inst) or None
        self.state.config["Entrypoint"] = ep
        if not self.state.cmd_set:
            self.state.config["Cmd"] = None
        return self._commit(n, inst, f"ENTRYPOINT {_go_quote_list(ep or [])}")

    def _do_shell(self, n: int, inst: Instruction) -> StepResult:
        if inst.json_args is None:
            raise _parse_error(inst.line, "SHELL requires the arguments to be in JSON form")
        if not inst.json_args:
            raise _parse_error(inst.line, "SHELL requires at least one argument")
        self.state.config["Shell"] = list(inst.json_args)
        return self._commit(n, inst, f"SHELL [{' '.join(inst.json_args)}]")

    def _do_expose(self, n: int, inst: Instruction) -> StepResult:
        # moby's parser sorts the words as written; each is then expanded (into words)
        words = [w for raw in sorted(inst.rest.split()) for w in self._expand(raw, inst).split()]
        if not words:
            raise _parse_error(inst.line, "EXPOSE requires at least one argument")
        ports = dict(self.state.config.get("ExposedPorts") or {})
        for w in words:
            port, _, proto = w.partition("/")
            proto = (proto or "tcp").lower()
            lo, dash, hi = port.partition("-")
            if not lo.isdigit() or (dash and not hi.isdigit()):
                raise BuildError(f"Invalid containerPort: {port}", line=inst.line)
            for p in range(int(lo), int(hi if dash else lo) + 1):
                ports[f"{p}/{proto}"] = {}
        self.state.config["ExposedPorts"] = ports
        return self._commit(n, inst, "EXPOSE " + " ".join(words))

    def _do_user(self, n: int, inst: Instruction) -> StepResult:
        if not inst.rest:
            raise _parse_error(inst.line, "USER requires exactly one argument")
        user = self._expand(inst.rest, inst)
        self.state.config["User"] = user
        return self._commit(n, inst, f"USER {user}")

    def _do_volume(self, n: int, inst: Instruction) -> StepResult:
        words = inst.json_args if inst.json_args is not None else inst.rest.split()
        words = [self._expand(w, inst).strip() for w in words]
        if not words:
            raise _parse_error(inst.line, "VOLUME requires at least one argument")
        if any(not w for w in words):
            raise _parse_error(inst.line, "VOLUME specified can not be an empty string")
        volumes = dict(self.state.config.get("Volumes") or {})
        for w in words:
            volumes[w] = {}
        self.state.config["Volumes"] = volumes
        return self._commit(n, inst, f"VOLUME [{' '.join(words)}]")

    def _do_stopsignal(self, n: int, inst: Instruction) -> StepResult:
        sig = self._expand(inst.rest, inst)
        if not sig:
            raise _parse_error(inst.line, "STOPSIGNAL requires exactly one argument")
        self.state.config["StopSignal"] = sig
        return self._commit(n, inst, f"STOPSIGNAL {sig}")

    def _do_onbuild(self, n: int, inst: Instruction) -> StepResult:
        trigger = inst.rest.split(" ", 1)[0].upper()
        if not trigger:
            raise _parse_error(inst.line, "ONBUILD requires at least one argument")
        if trigger == "ONBUILD":
            raise _parse_error(inst.line, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if trigger in ("MAINTAINER", "FROM"):
            raise _parse_error(inst.line, f"{trigger} isn't allowed as an ONBUILD trigger")
        self.state.config["OnBuild"] = list(self.state.config.get("OnBuild") or []) + [inst.rest]
        return self._commit(n, inst, f"ONBUILD {inst.rest}")

    def _do_healthcheck(self, n: int, inst: Instruction) -> StepResult:
        words = inst.rest.split(None, 1)
        if not words:
            raise _parse_error(inst.line, "HEALTHCHECK requires at least one argument")
        kind = words[0].upper()
        if kind == "NONE":
            health: dict = {"Test": ["NONE"]}
        elif kind == "CMD":
            rest = words[1] if len(words) > 1 else ""
            sub = _instruction("CMD " + rest, inst.line) if rest else None
            if sub is None:
                raise _parse_error(inst.line, "Missing command after HEALTHCHECK CMD")
            test = ["CMD", *sub.json_args] if sub.json_args is not None else ["CMD-SHELL", rest]
            health = {"Test": test}
            for key, flag in (("Interval", "interval"), ("Timeout", "timeout"),
                              ("StartPeriod", "start-period")):  # fmt: skip
                if flag in inst.flags:
                    health[key] = _duration_ns(inst.flags[flag], inst.line)
            if "retries" in inst.flags:
                health["Retries"] = int(inst.flags["retries"])
        else:
            raise _parse_error(inst.line, f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
        self.state.config["Healthcheck"] = health
        return self._commit(n, inst, f"HEALTHCHECK {_go_struct(health)}")

    def _do_arg(self, n: int, inst: Instruction) -> StepResult:
        words = inst.rest.split()
        if len(words) != 1:
            raise _parse_error(inst.line, "ARG requires exactly one argument")
        key, eq, value = words[0].partition("=")
        if not key:
            raise _parse_error(inst.line, "ARG names can not be blank")
        default = self._expand(value, inst) if eq else None
        if default is None and key in self.meta_args:
            default = self.meta_args[key]
        self.state.args[key] = default
        if key in self.opts.build_args:
            self.used_args.add(key)
        return self._commit(n, inst, f"ARG {key}" + (f"={default}" if eq else ""))

    def _do_workdir(self, n: int, inst: Instruction) -> StepResult:
        if not inst.rest:
            raise _parse_error(inst.line, "WORKDIR requires exactly one argument")
        path = self._expand(inst.rest, inst)
        current = self.state.config.get("WorkingDir") or "/"
        wd = os.path.normpath(path if path.startswith("/") else os.path.join("/", current, path))
        self.state.config["WorkingDir"] = wd
        return self._commit(n, inst, f"WORKDIR {wd}", mkdir=wd, one_word=True)

    # -- commits

    def _probe_config(self, cmd: list[str]) -> dict:
        cfg = dict(self.state.config)
        cfg["Cmd"] = cmd
        cfg["Image"] = self.state.image_id
        return cfg

    def _probe(self, container_config: dict) -> str | None:
        if self.opts.no_cache:
            return None
        found = find_cached(self.store, self.state.image_id, container_config)
        if found:
            self._say(" ---> Using cache")
        return found

    def _commit(
        self, n: int, inst: Instruction, comment: str, *, mkdir: str = "", one_word: bool = False
    ) -> StepResult:
        """A step that changes the config only (WORKDIR also makes its directory): Docker's
        ``commit`` with a ``#(nop)`` command, through a created (never started) container.
        The command is moby's ``withCmdComment`` (``"#(nop) ", comment``: two spaces in the
        history) or, with ``one_word``, ``withCmdCommentString`` (``"#(nop) " + comment``)."""
        if self.disable_commit:
            return StepResult(n, inst.original, "")
        shell = list(self.state.config.get("Shell") or DEFAULT_SHELL)
        nop = ["#(nop) " + comment] if one_word else ["#(nop) ", comment]
        container_config = self._probe_config([*shell, *nop])
        cached = self._probe(container_config)
        if cached:
            return self._use_cache(n, inst, cached)
        if self.state.image is None:
            # FROM scratch and nothing yet: there is no image to create a container from
            with _rw_layer(self.store, None, self.work_dir) as (merged, upper):
                if mkdir:
                    _mkdir_in(merged, mkdir, 0, 0)
            return self._new_image(n, inst, container_config, upper, container_id="")
        c = self.manager.create(
            ContainerSpec(image=self.state.image_id, cmd=container_config["Cmd"], entrypoint=[])
        )
        self._say(f" ---> Running in {short_id(c.id)}")
        try:
            if mkdir:
                rootfs = self.manager.mount_rootfs(c)
                _mkdir_in(rootfs, mkdir, 0, 0)
            step = self._new_image(
                n, inst, container_config, os.path.join(self.manager.cdir(c.id), "upper"), c.id
            )
        except BaseException:
            if self.opts.force_rm:
                self._remove_container(c.id)
            raise
        if self.opts.remove or self.opts.force_rm:
            self._remove_container(c.id)
        return step

    def _remove_container(self, cid: str) -> None:
        self._say(f"Removing intermediate container {short_id(cid)}")
        self.manager.remove(cid, force=True, volumes=True)

    def _use_cache(self, n: int, inst: Instruction, image_id: str) -> StepResult:
        self.state.image = self.store.get_image(image_id)
        return StepResult(n, inst.original, image_id, cached=True)

    def _new_image(
        self, n: int, inst: Instruction, container_config: dict, upper: str, container_id: str
    ) -> StepResult:
        parent = self.state.image
        parent_chain = parent.layers[-1] if parent and parent.layers else ""
        layer = layer_from_upper(self.store, upper, parent_chain, self.work_dir)
        history_entry: dict = {"created": now_rfc3339nano()}
        if self.state.author:
            history_entry["author"] = self.state.author
        history_entry["created_by"] = " ".join(container_config["Cmd"])
        if layer is None:
            history_entry["empty_layer"] = True
        rec = put_child_image(
            self.store,
            parent,
            config=dict(self.state.config, Image=self.state.image_id),
            container_config=container_config,
            container_id=container_id,
            layer=layer,
            history_entry=history_entry,
            author=self.state.author,
        )
        self.state.image = rec
        return StepResult(n, inst.original, rec.id, layer_size=layer.size if layer else None)

    # -- RUN

    def _do_run(self, n: int, inst: Instruction) -> StepResult:
        if self.state.image is None:
            raise BuildError(
                "Please provide a source image with `from` prior to run", line=inst.line
            )
        cmd = self._cmd_line(inst)
        if not cmd:
            raise _parse_error(inst.line, "RUN requires at least one argument")
        env_keys = {e.split("=", 1)[0] for e in self.state.config.get("Env") or []}
        arg_env = sorted(f"{k}={v}" for k, v in self._arg_values().items() if k not in env_keys)
        saved_cmd = [f"|{len(arg_env)}", *arg_env, *cmd] if arg_env else cmd
        container_config = self._probe_config(saved_cmd)
        cached = self._probe(container_config)
        if cached:
            return self._use_cache(n, inst, cached)
        c = self.manager.create(
            ContainerSpec(
                image=self.state.image_id,
                cmd=cmd,
                entrypoint=[],
                env=arg_env,
                workdir=self.state.config.get("WorkingDir") or "",
                user=self.state.config.get("User") or "",
                network="none",
            )
        )
        self._say(f" ---> Running in {short_id(c.id)}")
        ok = False
        try:
            try:
                self.manager.start(c.id)
            except ContainerStartError as e:
                raise BuildError(str(e), exit_code=e.exit_code, line=inst.line) from e
            for _stream, text, _time in self.manager.logs(c.id, follow=True):
                self.out(text)
            code = self.manager.wait(c.id)
            if code != 0:
                raise BuildError(
                    f"The command '{' '.join(cmd)}' returned a non-zero code: {code}",
                    exit_code=code,
                    line=inst.line,
                )
            step = self._new_image(
                n, inst, container_config, os.path.join(self.manager.cdir(c.id), "upper"), c.id
            )
            ok = True
        finally:
            if (ok and self.opts.remove) or self.opts.force_rm:
                self._remove_container(c.id)
        return step

    # -- COPY and ADD

    def _do_copy(self, n: int, inst: Instruction) -> StepResult:
        return self._copy(n, inst, add=False)

    def _do_add(self, n: int, inst: Instruction) -> StepResult:
        return self._copy(n, inst, add=True)

    def _copy(self, n: int, inst: Instruction, *, add: bool) -> StepResult:
        name = inst.name
        if "from" in inst.flags:
            raise BuildError(
                f"{name} --from is not supported: copy from the build context", line=inst.line
            )
        words = inst.json_args if inst.json_args is not None else inst.rest.split()
        words = [self._expand(w, inst) for w in words]
        if len(words) < 2:
            raise _parse_error(
                inst.line,
                f"{name} requires at least two arguments, but only one was provided. "
                "Destination could not be determined.",
            )
        sources, dest = words[:-1], words[-1]
        if len(sources) > 1 and not dest.endswith("/"):
            raise BuildError(
                f"When using {name} with more than one source file, the destination must be "
                "a directory and end with a /",
                line=inst.line,
            )
        infos: list[tuple[str, str]] = []  # (context path, hash)
        for src in sources:
            if re.match(r"^https?://", src):
                if not add:
                    raise BuildError(f"{name} failed: source can't be a URL for {name}")
                raise BuildError(
                    f"ADD failed: remote URL {src} refused: builds here run without network "
                    "access; download the file into the build context and ADD it from there",
                    line=inst.line,
                )
            infos.extend(self._sources(name, src))
        src_hash = (
            infos[0][1]
            if len(infos) == 1
            else "multi:" + hashlib.sha256(",".join(h for _, h in infos).encode()).hexdigest()
        )
        shell = list(self.state.config.get("Shell") or DEFAULT_SHELL)
        # moby's performCopy comment, --chown glued to the hash as Docker writes it; being in
        # the Cmd, it is part of the cache key
        chown = self._expand(inst.flags.get("chown", ""), inst)
        chown_comment = f"--chown={chown}" if chown else ""
        container_config = self._probe_config(
            [*shell, f"#(nop) {name} {chown_comment}{src_hash} in {dest} "]
        )
        cached = self._probe(container_config)
        if cached:
            return self._use_cache(n, inst, cached)
        if not dest.startswith("/"):
            trailing = dest.endswith("/") or dest in (".", "./")
            dest = os.path.join("/", self.state.config.get("WorkingDir") or "/", dest)
            dest = os.path.normpath(dest) + ("/" if trailing else "")
        with _rw_layer(self.store, self.state.image, self.work_dir) as (merged, upper):
            uid, gid = self._chown(merged, inst)
            for rel, _ in infos:
                self._copy_one(merged, rel, dest, uid, gid, add=add, many=len(infos) > 1)
        return self._new_image(n, inst, container_config, upper, container_id="")

    def _sources(self, name: str, src: str) -> list[tuple[str, str]]:
        if self.context.root is None:
            raise BuildError(f"{name} failed: no build context: upload one to copy {src}")
        rel = os.path.normpath(src.lstrip("/")) if src.strip("/") else "."
        if rel == ".." or rel.startswith("../"):
            raise BuildError(f"{name} failed: forbidden path outside the build context: {src} ()")
        if any(ch in rel for ch in "*?["):
            matches = [p for p in self.context.paths if fnmatch.fnmatchcase(p, rel)]
            matches = [p for p in matches if p.count("/") == rel.count("/")]
            if not matches:
                raise BuildError(f"{name} failed: no source files were specified")
            return [(p, self.context.hash(p)) for p in sorted(matches)]
        if not self.context.has(rel) or not os.path.lexists(self.context.abs(rel)):
            raise BuildError(
                f"{name} failed: file not found in build context or excluded by "
                f".dockerignore: stat {src}: file does not exist"
            )
        return [(rel, self.context.hash(rel))]

    def _chown(self, rootfs: str, inst: Instruction) -> tuple[int, int]:
        spec = self._expand(inst.flags.get("chown", ""), inst)
        if not spec:
            return 0, 0
        # moby's parseChownFlag: a lone user names the group too ("1000" is 1000:1000)
        user, _, group = spec.partition(":")
        try:
            u = oci.resolve_user(rootfs, f"{user}:{group or user}")
        except ContainerStartError as e:
            raise BuildError(
                f"unable to convert uid/gid chown string to host mapping: {e}", line=inst.line
            ) from None
        return u.uid, u.gid

    def _copy_one(
        self, rootfs: str, rel: str, dest: str, uid: int, gid: int, *, add: bool, many: bool
    ) -> None:
        src = self.context.abs(rel)
        st = os.lstat(src)
        if stat.S_ISDIR(st.st_mode):
            # moby's copyDirectory: missing directories are made root's (CopyWithTar), then
            # fixPermissions chowns the destination itself only if it was new
            target = _mkdir_in(rootfs, dest, 0, 0, last_owner=(uid, gid))
            self._copy_tree(rel, target, uid, gid)
            return
        if add and stat.S_ISREG(st.st_mode) and _is_archive(src):
            # moby's UntarPath: the tar's own owners, modes and times; --chown plays no part
            target = _mkdir_in(rootfs, dest, 0, 0)
            with _decompressed(src) as stream:
                try:
                    untar(stream, target)
                except LayerError as e:
                    raise BuildError(f"ADD failed: {rel}: {e}") from e
            return
        if dest.endswith("/") or many or os.path.isdir(oci.in_root(rootfs, dest)):
            target_dir = _mkdir_in(rootfs, dest, uid, gid)
            target = os.path.join(target_dir, os.path.basename(rel))
        else:
            parent = _mkdir_in(rootfs, os.path.dirname(dest.rstrip("/")) or "/", uid, gid)
            target = os.path.join(parent, os.path.basename(dest.rstrip("/")))
        _copy_entry(src, target, uid, gid)

    def _copy_tree(self, rel: str, target: str, uid: int, gid: int) -> None:
        for child in self.context.children(rel):
            src = self.context.abs(child)
            dst = os.path.join(target, os.path.basename(child))
            st = os.lstat(src)
            if stat.S_ISDIR(st.st_mode):
                if not os.path.isdir(dst):
                    if os.path.lexists(dst):
                        os.unlink(dst)
                    os.mkdir(dst)
                os.lchown(dst, uid, gid)
                os.chmod(dst, stat.S_IMODE(st.st_mode))
                self._copy_tree(child, dst, uid, gid)
                os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
            else:
                _copy_entry(src, dst, uid, gid)


def _duration_ns(text: str, line: int) -> int:
    total = 0.0
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise _parse_error(line, f'time: invalid duration "{text}"')
    for value, unit in parts:
        total += float(value) * units[unit]
    return int(total * 1e9)


def _go_struct(health: dict) -> str:
    """Go's ``%v`` of a HealthConfig: ``&{["CMD-SHELL" "true"] "0s" ...}`` (approximated)."""
    fields = [_go_quote_list(health["Test"])]
    fields += [str(health.get(k, 0)) for k in ("Interval", "Timeout", "StartPeriod", "Retries")]
    return "&{" + " ".join(fields) + "}"


def _is_archive(path: str) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _mkdir_in(
    rootfs: str, path: str, uid: int, gid: int, *, last_owner: tuple[int, int] | None = None
) -> str:
    """Make ``path`` (and missing parents, owned by uid:gid, 0755) inside ``rootfs``, following
    symlinks inside it; returns its host path. ``last_owner``: the owner of ``path`` itself
    when it is made here."""
    current = "/"
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        current = os.path.join(current, part)
        host = oci.in_root(rootfs, current)
        if not os.path.isdir(host):
            if os.path.lexists(host):
                raise BuildError(f"mkdir {current}: not a directory")
            os.mkdir(host, 0o755)
            owner = last_owner if last_owner and i == len(parts) - 1 else (uid, gid)
            os.lchown(host, *owner)
    return oci.in_root(rootfs, path)


@contextlib.contextmanager
def _decompressed(path: str) -> Iterator:
    """The file as moby's DecompressStream gives it: gzip, bzip2 and xz undone."""
    with open(path, "rb") as f:
        magic = f.read(6)
        f.seek(0)
        if magic.startswith(b"\x1f\x8b"):
            with gzip.open(f) as g:
                yield g
        elif magic.startswith(b"BZh"):
            with bz2.open(f) as b:
                yield b
        elif magic.startswith(b"\xfd7zXZ\x00"):
            with lzma.open(f) as x:
                yield x
        else:
            yield f


def _copy_entry(src: str, dst: str, uid: int, gid: int) -> None:
    st = os.lstat(src)
    if os.path.isdir(dst) and not os.path.islink(dst):
        shutil.rmtree(dst)
    elif os.path.lexists(dst):
        os.unlink(dst)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISREG(st.st_mode):
        shutil.copyfile(src, dst, follow_symlinks=False)
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    else:
        return  # devices, fifos and sockets of a context are not copied
    os.lchown(dst, uid, gid)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def put_child_image(
    store: Store,
    parent: ImageRecord | None,
    *,
    config: dict,
    container_config: dict,
    container_id: str,
    layer: LayerRecord | None,
    history_entry: dict,
    author: str = "",
    comment: str = "",
) -> ImageRecord:
    """Record an image one step above ``parent`` (moby's ``NewChildImage``): the parent's
    layers plus ``layer`` (None: an empty layer, only the history grows), the parent's
    history plus ``history_entry``, ``parent`` set in the config and in the record."""
    base = parent.config if parent else {}
    diff_ids = list(base.get("rootfs", {}).get("diff_ids", []))
    if layer is not None:
        diff_ids.append(layer.diff_id)
    image: dict = {
        "architecture": base.get("architecture") or _go_arch(),
        "config": config,
        "container_config": container_config,
        "created": history_entry["created"],
        "history": list(base.get("history") or []) + [history_entry],
        "os": base.get("os") or "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    if container_id:
        image["container"] = container_id
    if author:
        image["author"] = author
    if comment:
        image["comment"] = comment
    if base.get("variant"):
        image["variant"] = base["variant"]
    if parent:
        image["parent"] = parent.id
    return store.put_image(image_config_bytes(image), parent=parent.id if parent else "")


def _go_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def build(
    store: Store,
    manager,
    options: BuildOptions,
    *,
    on_output: Output | None = None,
    pull: Callable[[str, Output], None] | None = None,
) -> BuildResult:
    """Build ``options.dockerfile`` as classic ``docker build``; returns the final image.

    ``manager`` is the ContainerManager that runs RUN steps (network ``none``). ``pull(ref,
    on_output)`` fetches a FROM image missing from the store (None: ImageNotFound). Raises
    BuildError with Docker's message (``.line`` the Dockerfile line, ``.exit_code`` a failed
    RUN's code). Images of the steps that succeeded stay in the store, as Docker's do.
    """
    return Builder(store, manager, options, on_output=on_output, pull=pull).run()


# -- commit -----------------------------------------------------------------------------


def commit(
    store: Store,
    manager,
    ref: str,
    repo_tag: str = "",
    *,
    message: str = "",
    author: str = "",
    changes: list[str] | tuple[str, ...] = (),
    pause: bool = True,
) -> str:
    """``docker commit``: the container's writable layer becomes a layer on top of its image.

    A running container is paused while its layer is read (unless ``pause`` is False) and
    resumed afterwards. ``changes`` are Dockerfile instructions applied to the config
    (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL).
    Returns the new image ID; ``repo_tag`` (optional) is pointed at it.
    """
    c = manager.get(ref)
    target = None
    if repo_tag:
        target = refs.parse_normalized_named(repo_tag)
        if target.digest:
            raise DockwebError("refusing to create a tag with a digest reference")
    parent = store.get_image(c.image_id)
    image_cfg = parent.config.get("config") or {}
    config = dict(image_cfg)
    config["Hostname"] = c.hostname
    config["Env"] = oci.merge_env(image_cfg.get("Env") or [f"PATH={oci.DEFAULT_PATH}"], c.spec.env)
    entrypoint = (
        c.spec.entrypoint if c.spec.entrypoint is not None else image_cfg.get("Entrypoint") or []
    )
    config["Entrypoint"] = list(entrypoint) or None
    config["Cmd"] = [c.path, *c.args][len(entrypoint) :] or None
    if c.spec.workdir:
        config["WorkingDir"] = c.spec.workdir
    if c.spec.user:
        config["User"] = c.spec.user
    config["Tty"] = c.spec.tty
    config["OpenStdin"] = c.spec.interactive
    if c.spec.labels:
        config["Labels"] = {**(image_cfg.get("Labels") or {}), **c.spec.labels}
    config["Image"] = c.image
    container_config = dict(config)
    if changes:
        config = _apply_changes(store, config, changes)
    paused = False
    if pause and c.status is Status.RUNNING:
        manager.pause(c.id)
        paused = True
    work_dir = os.path.join(store.root, "builds", secrets.token_hex(8))
    os.makedirs(work_dir)
    try:
        parent_chain = parent.layers[-1] if parent.layers else ""
        layer = layer_from_upper(
            store, os.path.join(manager.cdir(c.id), "upper"), parent_chain, work_dir
        )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(work_dir))
        if paused:
            with contextlib.suppress(DockwebError):
                manager.unpause(c.id)
    entry: dict = {"created": now_rfc3339nano()}
    if author:
        entry["author"] = author
    entry["created_by"] = " ".join([c.path, *c.args])
    if message:
        entry["comment"] = message
    if layer is None:
        entry["empty_layer"] = True
    rec = put_child_image(
        store,
        parent,
        config=config,
        container_config=container_config,
        container_id=c.id,
        layer=layer,
        history_entry=entry,
        author=author,
        comment=message,
    )
    if target is not None:
        store.add_reference(target, rec.id, force=True)
    return rec.id


def _apply_changes(store: Store, config: dict, changes) -> dict:
    """Apply ``--change`` instructions to a config with the builder's own dispatchers,
    without committing anything (moby's ``disableCommit``)."""
    allowed = {"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER", "VOLUME",
               "WORKDIR", "STOPSIGNAL"}  # fmt: skip
    builder = Builder(store, None, BuildOptions(dockerfile=""))
    builder.disable_commit = True
    builder.state.config = dict(config)
    for text in changes:
        for inst in parse_dockerfile(text)[0]:
            if inst.name not in allowed:
                raise DockwebError(f"{inst.name.lower()} is not a valid change command")
            builder._dispatch(0, inst)
    return builder.state.config
