"""Host access: what a container may reach on the host beyond its own sandbox, and who may
ask for it from the web side (pages and the JSON API).

Running a container with a host path bind-mounted, the host's network, a device, an added
capability or its confinement switched off makes whoever asks for it root on the host. On
the web side that is an admin's right: operators get named volumes, tmpfs and published
ports, and bind mounts only of existing paths under ``DOCKWEB_BIND_ROOTS`` (resolved with
realpath, so ``..`` and symlinks cannot lead out; empty by default: no bind mounts at all).
A missing bind source is never created for them.

``HOST_ACCESS`` is the one list of the options that reach the host; ``check(spec, user)``
applies it to a parsed ``ContainerSpec`` (so every way of writing an option, ``-v`` or
``--mount``, is the same check). ``containers.services`` calls it when a run is asked
(the form shows the refusal) and again in the worker before the container is made.
The CLI and the Engine API socket need root or the socket, and are not checked here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace

from django.conf import settings
from django.utils.translation import gettext as _

from access.roles import ADMIN, has_role, role_of
from dockweb.docker.run_options import InvalidOption


class HostAccessRefused(InvalidOption):
    """An option that reaches the host, asked by a user below the admin role."""


@dataclass(frozen=True)
class Rule:
    """One kind of host access: ``find(spec)`` lists what the spec asks of it (as the user
    wrote it, for the message); empty when nothing."""

    name: str  # the run option, as the form and docker name it
    what: str  # for the message: "the host's network", ...
    find: Callable[[object], list[str]]


def _mounts(spec) -> list:
    return getattr(spec, "mounts", None) or []


def _default_caps() -> set[str]:
    from dockweb.runtime.oci import DEFAULT_CAPABILITIES

    return set(DEFAULT_CAPABILITIES)


def _added_caps(spec) -> list[str]:
    default = _default_caps()
    out = []
    for cap in getattr(spec, "cap_add", None) or []:
        name = cap.upper()
        full = name if name == "ALL" or name.startswith("CAP_") else "CAP_" + name
        if full not in default:
            out.append(cap)
    return out


# --security-opt values that keep Docker's default confinement (or tighten it)
CONFINED_SECURITY_OPTS = {
    "seccomp": ("", "default", "builtin"),
    "apparmor": ("", "docker-default"),
    "no-new-privileges": ("", "1", "t", "true", "0", "f", "false"),
}


def _security_opts(spec) -> list[str]:
    """``--security-opt`` values that loosen the container's confinement: seccomp or
    AppArmor unconfined or another profile (a seccomp profile is read from a host file),
    SELinux labels off, unmasked system paths... (a ``security_opt`` list on the spec, as
    docker's HostConfig.SecurityOpt; raw or parsed)."""
    out = []
    for opt in getattr(spec, "security_opt", None) or []:
        text = str(opt).strip()
        sep = "=" if "=" in text else ":"
        key, _sep, value = text.partition(sep)
        allowed = CONFINED_SECURITY_OPTS.get(key.strip().lower())
        if allowed is None or value.strip().lower() not in allowed:
            out.append(text if len(text) <= 80 else text[:77] + "...")
    return out


# Every option that reaches the host, in one place. A new run option that does (pid=host,
# ipc=host, sysctls...) gets a rule here; fields a spec does not have read as empty.
HOST_ACCESS: tuple[Rule, ...] = (
    Rule(
        "volumes",
        "a bind mount of a host path",
        lambda spec: [f"{m.source}:{m.target}" for m in _mounts(spec) if m.type == "bind"],
    ),
    Rule(
        "network",
        "the host's network",
        lambda spec: ["host"] if getattr(spec, "network", "") == "host" else [],
    ),
    Rule(
        "device",
        "a host device",
        lambda spec: [str(d) for d in getattr(spec, "devices", None) or []],
    ),
    Rule(
        "privileged",
        "privileged mode",
        lambda spec: ["privileged"] if getattr(spec, "privileged", False) else [],
    ),
    Rule("cap_add", "an added capability", _added_caps),
    Rule("security_opt", "switching confinement off", _security_opts),
)


def bind_roots() -> list[str]:
    """``DOCKWEB_BIND_ROOTS`` resolved (realpath): the host directories operators may
    bind-mount from (and below)."""
    roots = getattr(settings, "DOCKWEB_BIND_ROOTS", None) or []
    return [os.path.realpath(r) for r in roots if os.path.isabs(r)]


def resolve_bind_source(source: str, roots: list[str]) -> str:
    """The real path of ``source`` if it exists and lies under one of ``roots``; raises
    HostAccessRefused otherwise (never creates it)."""
    real = os.path.realpath(source)
    if not any(real == root or real.startswith(root.rstrip("/") + "/") for root in roots):
        if roots:
            raise HostAccessRefused(
                _(
                    "%(source)s: operators may bind-mount only host paths under %(roots)s; "
                    "other host paths need the admin role."
                )
                % {"source": source, "roots": ", ".join(roots)}
            )
        raise HostAccessRefused(
            _(
                "%(source)s: bind mounts of host paths need the admin role (no "
                "DOCKWEB_BIND_ROOTS are set for operators). Use a named volume instead, "
                "e.g. data:/data."
            )
            % {"source": source}
        )
    if not os.path.exists(real):
        raise HostAccessRefused(
            _(
                'invalid mount config for type "bind": bind source path does not exist: '
                "%(source)s (it is not created for operators)"
            )
            % {"source": source}
        )
    return real


def check_options(options: dict, user=None, *, admin: bool | None = None) -> None:
    """``check`` on run options as written (``build_spec``'s keyword arguments), before a
    parser acts on them: docker's client reads the seccomp profile file a
    ``security_opt`` names, which must not happen for a user who may not name one."""
    raw = {
        k: options[k] for k in ("security_opt", "privileged", "network", "cap_add") if k in options
    }
    check(SimpleNamespace(**raw), user, admin=admin)


def may_reach_host(user) -> bool:
    """Whether ``user`` may ask for any host access (admins)."""
    return has_role(user, ADMIN)


def check(spec, user=None, *, admin: bool | None = None) -> None:
    """Refuse (HostAccessRefused, a form error) what ``spec`` asks of the host unless the
    user is an admin. Bind mounts under ``DOCKWEB_BIND_ROOTS`` are allowed to others: their
    sources are replaced in ``spec`` by their real paths, and never created.

    ``admin`` overrides the role lookup (the worker passes what was decided at request
    time, without a request's user)."""
    if admin is None:
        admin = may_reach_host(user)
    if admin:
        return
    current = role_of(user) if user is not None else ""
    roots = bind_roots()
    for rule in HOST_ACCESS:
        asked = rule.find(spec)
        if not asked:
            continue
        if rule.name == "volumes":
            for m in _mounts(spec):
                if m.type == "bind":
                    m.source = resolve_bind_source(m.source, roots)
                    m.create_source = False
            continue
        raise HostAccessRefused(
            _(
                "%(option)s=%(asked)s: %(what)s is host access, which needs the admin role "
                "(you are %(current)s)."
            )
            % {
                "option": rule.name,
                "asked": ",".join(asked),
                "what": rule.what,
                "current": current or _("not signed in"),
            }
        )
