"""What a viewer reads: names, not secret values.

Environment values (``DB_PASSWORD=…``), build-argument values (in image history, build
steps and output, Dockerfiles), registry usernames and the host's paths under
``DOCKWEB_DATA`` are shown to operators and admins as they are, and to viewers masked
(``DB_PASSWORD=••••``, ``<data>/…``). Plain functions on text and Docker's shapes, used by
the views, the JSON API and the ``masking`` template filters; ``shows_secrets(user)``
says who sees them.
"""

from __future__ import annotations

import re

from django.conf import settings

from access.roles import OPERATOR, has_role

MASK = "••••"
# build-argument values shorter than this are not searched for in build output (a "1"
# would mask every digit); they are still masked where they are named (KEY=value)
MIN_SECRET = 4

_PAIR = re.compile(r"""([A-Za-z_][A-Za-z0-9_.\-]*)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)""")
_ARG_ENV = re.compile(r"^(\s*)(ARG|ENV)(\s+)(.*)$", re.IGNORECASE | re.DOTALL)
_NOP = re.compile(r"(#\(nop\)\s+)(.*)$", re.DOTALL)
_BUILD_ARGS = re.compile(r"^\|(\d+) ")


def shows_secrets(user) -> bool:
    """Whether ``user`` sees secret values (operators and admins)."""
    return has_role(user, OPERATOR)


def env_entry(entry: str) -> str:
    """``KEY=value`` → ``KEY=••••``; a bare ``KEY`` stays."""
    key, eq, _value = str(entry).partition("=")
    return f"{key}={MASK}" if eq else key


def env(values) -> list[str]:
    return [env_entry(v) for v in values or []]


def _pairs(text: str) -> str:
    return _PAIR.sub(lambda m: f"{m.group(1)}={MASK}", text)


def instruction(text: str) -> str:
    """One Dockerfile instruction (``ARG TOKEN=abc``, ``ENV A=1 B="x y"``, ``ENV A 1``)
    with its values masked; other instructions unchanged."""
    m = _ARG_ENV.match(text)
    if not m:
        return text
    lead, keyword, space, rest = m.groups()
    first = rest.split(None, 1)[0] if rest.strip() else ""
    if "=" in first:
        rest = _pairs(rest)
    elif keyword.upper() == "ENV":  # the legacy form: ENV KEY value with spaces
        name, _sp, value = rest.partition(" ")
        rest = f"{name} {MASK}" if value.strip() else rest
    return f"{lead}{keyword}{space}{rest}"


def dockerfile(text: str) -> str:
    """A Dockerfile with the values of its ARG and ENV instructions masked (continued
    lines included)."""
    out = []
    continued = False
    for line in str(text).splitlines(keepends=True):
        body = line.rstrip("\r\n")
        if continued:
            masked = _pairs(body)
        else:
            masked = instruction(body)
        # a continued ARG/ENV goes on masking its next line
        if continued or masked != body or _ARG_ENV.match(body):
            continued = body.rstrip().endswith("\\")
        out.append(masked + line[len(body) :])
    return "".join(out)


def created_by(text: str) -> str:
    """A history entry's command: the build arguments a RUN saw (``|2 A=1 B=2 /bin/sh
    -c …``) and the values of ``#(nop) ARG``/``ENV`` masked."""
    text = str(text or "")
    m = _BUILD_ARGS.match(text)
    if m:
        count = int(m.group(1))
        tokens = text[m.end() :].split(" ")
        tokens[:count] = [env_entry(t) for t in tokens[:count]]
        text = f"|{count} " + " ".join(tokens)
    nop = _NOP.search(text)
    if nop:
        text = text[: nop.start(2)] + instruction(nop.group(2))
    return text


def values(text: str, secrets) -> str:
    """``text`` with every occurrence of each of ``secrets`` (long enough) masked."""
    text = str(text)
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def paths(text: str) -> str:
    """``text`` without the host's paths of dockweb's data: ``DOCKWEB_ROOT`` reads
    ``<store>``, ``DOCKWEB_DATA`` reads ``<data>``."""
    text = str(text)
    for path, name in (
        (getattr(settings, "DOCKWEB_ROOT", None), "<store>"),
        (getattr(settings, "DOCKWEB_DATA", None), "<data>"),
    ):
        if path:
            text = text.replace(str(path).rstrip("/"), name)
    return text


def container_json(info: dict) -> dict:
    """docker inspect's ContainerJSON for a viewer: Config.Env values masked (a copy)."""
    out = dict(info)
    config = dict(out.get("Config") or {})
    if "Env" in config:
        config["Env"] = env(config["Env"])
    if out.get("Config") is not None:
        out["Config"] = config
    return out


def image_detail(detail: dict) -> dict:
    """``images.services.image_detail`` for a viewer (a copy): env values, and build
    arguments and ARG/ENV values in the layers' and history's commands, masked."""
    out = dict(detail)
    config = dict(out.get("config") or {})
    if config.get("Env"):
        config["Env"] = env(config["Env"])
    out["config"] = config
    out["layers"] = [
        {**row, "created_by": created_by(row.get("created_by", ""))}
        for row in out.get("layers") or []
    ]
    out["history"] = [
        {**row, "created_by": created_by(row.get("created_by", ""))}
        for row in out.get("history") or []
    ]
    return out
