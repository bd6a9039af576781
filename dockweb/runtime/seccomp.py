"""Docker's seccomp profiles as the OCI spec's ``linux.seccomp``: moby/profiles
``seccomp_linux.go`` (``GetDefaultProfile``, ``LoadProfile``, ``setupSeccomp``) in Python.

A profile in Docker's JSON form (``profiles/seccomp-default.json``, or one given with
``--security-opt seccomp=<file>``) may hold an ``archMap`` and rules with ``includes`` and
``excludes`` conditions on the container's bounding capabilities, the host's architecture
and its kernel version; ``setup`` keeps what applies to this container on this host and
returns the runtime spec's form. crun compiles it into the BPF filter.

Plain Python, no state: the default profile's file is parsed once per process (a constant).
"""

from __future__ import annotations

import functools
import json
import os
import re

PROFILE_PATH = os.path.join(os.path.dirname(__file__), "profiles", "seccomp-default.json")

# `uname -m` -> Go's GOARCH -> libseccomp's name (moby's goToNative), which the profile's
# `arches` conditions use
_MACHINE_TO_NATIVE = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "i386": "x86",
    "i486": "x86",
    "i586": "x86",
    "i686": "x86",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv6l": "arm",
    "armv7l": "arm",
    "armv8l": "arm",
    "mips64": "mips64",
    "ppc": "ppc",
    "ppc64": "ppc64",
    "ppc64le": "ppc64le",
    "riscv64": "riscv64",
    "s390": "s390",
    "s390x": "s390x",
    "loongarch64": "loong64",
}

# libseccomp's name -> the spec's architecture (moby's nativeToSeccomp)
_NATIVE_TO_SECCOMP = {
    "x86": "SCMP_ARCH_X86",
    "amd64": "SCMP_ARCH_X86_64",
    "arm": "SCMP_ARCH_ARM",
    "arm64": "SCMP_ARCH_AARCH64",
    "loong64": "SCMP_ARCH_LOONGARCH64",
    "mips64": "SCMP_ARCH_MIPS64",
    "mips64n32": "SCMP_ARCH_MIPS64N32",
    "mipsel64": "SCMP_ARCH_MIPSEL64",
    "mips3l64n32": "SCMP_ARCH_MIPSEL64N32",
    "mipsle": "SCMP_ARCH_MIPSEL",
    "ppc": "SCMP_ARCH_PPC",
    "ppc64": "SCMP_ARCH_PPC64",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "riscv64": "SCMP_ARCH_RISCV64",
    "s390": "SCMP_ARCH_S390",
    "s390x": "SCMP_ARCH_S390X",
}


class ProfileError(ValueError):
    """A profile moby refuses, with moby's words (``Decoding seccomp profile failed: ...``)."""


def native_arch(machine: str | None = None) -> str:
    """This host's architecture as libseccomp names it (``amd64``, ``arm64``...)."""
    machine = machine or os.uname().machine
    return _MACHINE_TO_NATIVE.get(machine, machine)


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """``(kernel, major)`` of ``uname -r`` (``6.1.0-13-amd64`` -> (6, 1)), as moby's
    parseRelease: minor revisions and suffixes are ignored."""
    release = release or os.uname().release
    m = re.match(r"(\d+)\.(\d+)", release)
    if not m:
        raise ProfileError(f'failed to parse kernel version "{release}"')
    return int(m.group(1)), int(m.group(2))


@functools.cache
def _default_config() -> dict:
    """The default profile's file, parsed once per process (``setup`` never changes it)."""
    with open(PROFILE_PATH, encoding="utf-8") as f:
        return json.load(f)


def default_profile(
    bounding: list[str], *, arch: str | None = None, kernel: tuple[int, int] | None = None
) -> dict:
    """Docker's default profile for a container with these bounding capabilities."""
    return setup(_default_config(), bounding, arch=arch, kernel=kernel)


def load_profile(
    body: str,
    bounding: list[str],
    *,
    arch: str | None = None,
    kernel: tuple[int, int] | None = None,
) -> dict | None:
    """``--security-opt seccomp=<JSON>`` (the docker client sends the file's text): the
    spec's seccomp, None for a profile with neither a default action nor rules (moby:
    seccomp off). Raises ProfileError with moby's ``Decoding seccomp profile failed``."""
    try:
        config = json.loads(body)
    except ValueError as e:
        raise ProfileError(f"Decoding seccomp profile failed: {go_json_error(body, e)}") from None
    if not isinstance(config, dict):
        raise ProfileError(
            "Decoding seccomp profile failed: json: cannot unmarshal "
            f"{go_json_kind(config)} into Go value of type seccomp.Seccomp"
        )
    return setup(config, bounding, arch=arch, kernel=kernel)


def go_json_kind(value) -> str:
    """encoding/json's name for a decoded JSON value's kind, as its "cannot unmarshal X
    into ..." errors say it (also the Engine API's: dockweb/dockerapi)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def go_json_error(body: str, e: ValueError) -> str:
    """Go's encoding/json words for the common syntax errors."""
    pos = getattr(e, "pos", None)
    if pos is None or pos >= len(body.rstrip()):
        return "unexpected end of JSON input"
    ch = body[pos]
    msg = getattr(e, "msg", str(e))
    if msg.startswith("Expecting value"):
        return f"invalid character '{ch}' looking for beginning of value"
    if msg.startswith("Expecting property name"):
        return f"invalid character '{ch}' looking for beginning of object key string"
    if msg.startswith("Expecting ',' delimiter"):
        return f"invalid character '{ch}' after object key:value pair"
    if msg.startswith("Expecting ':' delimiter"):
        return f"invalid character '{ch}' after object key"
    if msg.startswith("Extra data"):
        return f"invalid character '{ch}' after top-level value"
    return msg


def _field(doc: dict, name: str):
    """Go's encoding/json matches field names case-insensitively."""
    if name in doc:
        return doc[name]
    low = name.lower()
    for key, value in doc.items():
        if key.lower() == low:
            return value
    return None


_KINDS = {"string": str, "list": list, "object": dict}


def _typed(value, kind, where: str, go_type: str):
    if value is None:
        return None
    if kind == "uint":
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    else:
        ok = isinstance(value, _KINDS[kind])
    if not ok:
        raise ProfileError(
            "Decoding seccomp profile failed: json: cannot unmarshal "
            f"{go_json_kind(value)} into Go struct field {where} of type {go_type}"
        )
    return value


def _strings(value, where: str, go_type: str) -> list[str]:
    items = _typed(value, "list", where, go_type) or []
    if not all(isinstance(v, str) for v in items):
        for v in items:
            _typed(v, "string", where, go_type.removeprefix("[]"))
    return list(items)


def _min_kernel(value, where: str) -> tuple[int, int] | None:
    """A filter's ``minKernel`` (``"4.8"``), checked as moby's KernelVersion.UnmarshalJSON."""
    if value is None:
        return None
    raw = json.dumps(value)
    if not isinstance(value, str):
        raise ProfileError(
            f"Decoding seccomp profile failed: invalid kernel version: {raw}, expected "
            f'"<kernel>.<major>": json: cannot unmarshal {go_json_kind(value)} into Go value of '
            "type string"
        )
    if value == "":
        return None
    parts = value.split(".", 2)
    if len(parts) != 2 or not all(re.fullmatch(r"\d{1,3}", p) and int(p) < 256 for p in parts):
        raise ProfileError(
            f"Decoding seccomp profile failed: invalid kernel version: {raw}, expected "
            '"<kernel>.<major>"'
        )
    version = (int(parts[0]), int(parts[1]))
    if version == (0, 0):
        raise ProfileError(
            f"Decoding seccomp profile failed: invalid kernel version: {raw}, expected "
            '"<kernel>.<major>": version cannot be 0.0'
        )
    return version


def _filter(doc, where: str) -> dict | None:
    doc = _typed(doc, "object", where, "seccomp.Filter")
    if doc is None:
        return None
    return {
        "caps": _strings(_field(doc, "caps"), "Filter.caps", "[]string"),
        "arches": _strings(_field(doc, "arches"), "Filter.arches", "[]string"),
        "minKernel": _min_kernel(_field(doc, "minKernel"), "Filter.minKernel"),
    }


def _arg(doc) -> dict:
    doc = _typed(doc, "object", "Syscall.args", "specs.LinuxSeccompArg")
    out = {
        "index": _typed(_field(doc, "index"), "uint", "LinuxSeccompArg.index", "uint") or 0,
        "value": _typed(_field(doc, "value"), "uint", "LinuxSeccompArg.value", "uint64") or 0,
    }
    two = _typed(_field(doc, "valueTwo"), "uint", "LinuxSeccompArg.valueTwo", "uint64")
    if two:
        out["valueTwo"] = two
    out["op"] = (
        _typed(_field(doc, "op"), "string", "LinuxSeccompArg.op", "specs.LinuxSeccompOperator")
        or ""
    )
    return out


def setup(
    config: dict,
    bounding: list[str],
    *,
    arch: str | None = None,
    kernel: tuple[int, int] | None = None,
) -> dict | None:
    """moby's setupSeccomp: the profile ``config`` (Docker's JSON form, parsed) for a
    container whose bounding capabilities are ``bounding``, on a host of architecture
    ``arch`` (libseccomp's name; this host's by default) and kernel ``kernel``."""
    arch = arch or native_arch()
    default_action = (
        _typed(
            _field(config, "defaultAction"),
            "string",
            "Seccomp.defaultAction",
            "specs.LinuxSeccompAction",
        )
        or ""
    )
    syscalls = _typed(_field(config, "syscalls"), "list", "Seccomp.syscalls", "[]*seccomp.Syscall")
    if not default_action and not syscalls:
        return None  # no default action and no rules: seccomp off, as moby
    architectures = _strings(
        _field(config, "architectures"), "Seccomp.architectures", "[]specs.Arch"
    )
    arch_map = (
        _typed(_field(config, "archMap"), "list", "Seccomp.archMap", "[]seccomp.Architecture") or []
    )
    if architectures and arch_map:
        raise ProfileError(
            "both 'architectures' and 'archMap' are specified in the seccomp profile, use "
            "either 'architectures' or 'archMap'"
        )
    out: dict = {"defaultAction": default_action}
    errno = _typed(_field(config, "defaultErrnoRet"), "uint", "Seccomp.defaultErrnoRet", "uint")
    if errno is not None:
        out["defaultErrnoRet"] = errno
    seccomp_arch = _NATIVE_TO_SECCOMP.get(arch)
    for entry in arch_map:
        entry = _typed(entry, "object", "Seccomp.archMap", "seccomp.Architecture")
        if _field(entry, "architecture") == seccomp_arch:
            architectures = [seccomp_arch] + _strings(
                _field(entry, "subArchitectures"),
                "Architecture.subArchitectures",
                "[]specs.Arch",
            )
            break
    if architectures:
        out["architectures"] = architectures
    flags = _strings(_field(config, "flags"), "Seccomp.flags", "[]specs.LinuxSeccompFlag")
    if flags:
        out["flags"] = flags
    for name in ("listenerPath", "listenerMetadata"):
        value = _typed(_field(config, name), "string", f"Seccomp.{name}", "string")
        if value:
            out[name] = value
    rules = []
    for call in syscalls or []:
        call = _typed(call, "object", "Seccomp.syscalls", "seccomp.Syscall")
        names = _strings(_field(call, "names"), "Syscall.names", "[]string")
        name = _typed(_field(call, "name"), "string", "Syscall.name", "string")
        if name:
            if names:
                raise ProfileError(
                    "both 'name' and 'names' are specified in the seccomp profile, use "
                    "either 'name' or 'names'"
                )
            names = [name]
        excludes = _filter(_field(call, "excludes"), "Syscall.excludes")
        includes = _filter(_field(call, "includes"), "Syscall.includes")
        rule = {
            "names": names,
            "action": _typed(
                _field(call, "action"), "string", "Syscall.action", "specs.LinuxSeccompAction"
            )
            or "",
        }
        errno = _typed(_field(call, "errnoRet"), "uint", "Syscall.errnoRet", "uint")
        if errno is not None:
            rule["errnoRet"] = errno
        args = [
            _arg(a)
            for a in _typed(_field(call, "args"), "list", "Syscall.args", "[]specs.LinuxSeccompArg")
            or []
        ]
        if args:
            rule["args"] = args
        if excludes is not None and _excluded(excludes, bounding, arch, kernel):
            continue
        if includes is not None and not _included(includes, bounding, arch, kernel):
            continue
        rules.append(rule)
    if rules:
        out["syscalls"] = rules
    return out


def _at_least(version: tuple[int, int], kernel: tuple[int, int] | None) -> bool:
    return (kernel or kernel_version()) >= version


def _excluded(f: dict, bounding: list[str], arch: str, kernel) -> bool:
    if f["arches"] and arch in f["arches"]:
        return True
    if any(c in bounding for c in f["caps"]):
        return True
    return f["minKernel"] is not None and _at_least(f["minKernel"], kernel)


def _included(f: dict, bounding: list[str], arch: str, kernel) -> bool:
    if f["arches"] and arch not in f["arches"]:
        return False
    if f["caps"] and not all(c in bounding for c in f["caps"]):
        return False
    return f["minKernel"] is None or _at_least(f["minKernel"], kernel)
