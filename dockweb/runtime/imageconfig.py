"""Docker's container.Config as Go marshals it: the field order, and which fields are left
out when empty (``omitempty``). One list for every caller: image configs a commit or a
build writes (``ordered_config``), ``docker image inspect``'s Config and ContainerConfig
(``inspect_config``), and ``docker inspect``'s container Config (``in_field_order``).
Plain Python."""

from __future__ import annotations

OMITEMPTY = object()  # the zero value of a field Go leaves out when empty

# (field, zero value or OMITEMPTY), in moby's api/types/container.Config order
CONTAINER_CONFIG_FIELDS: tuple[tuple[str, object], ...] = (
    ("Hostname", ""), ("Domainname", ""), ("User", ""), ("AttachStdin", False),
    ("AttachStdout", False), ("AttachStderr", False), ("ExposedPorts", OMITEMPTY),
    ("Tty", False), ("OpenStdin", False), ("StdinOnce", False), ("Env", None), ("Cmd", None),
    ("Healthcheck", OMITEMPTY), ("ArgsEscaped", OMITEMPTY), ("Image", ""), ("Volumes", None),
    ("WorkingDir", ""), ("Entrypoint", None), ("NetworkDisabled", OMITEMPTY),
    ("MacAddress", OMITEMPTY), ("OnBuild", None), ("Labels", None),
    ("StopSignal", OMITEMPTY), ("StopTimeout", OMITEMPTY), ("Shell", OMITEMPTY),
)  # fmt: skip

_FIELD_NAMES = tuple(name for name, _zero in CONTAINER_CONFIG_FIELDS)


def ordered_config(cfg: dict) -> dict:
    """A container config with Go's field order, as dockerd writes it into an image config:
    every field, its value kept as given (its zero value when absent), the ``omitempty``
    ones left out when falsy. Only the known fields."""
    out = {}
    for key, zero in CONTAINER_CONFIG_FIELDS:
        value = cfg.get(key, None if zero is OMITEMPTY else zero)
        if zero is OMITEMPTY and not value:
            continue
        out[key] = value
    return out


def inspect_config(raw: dict | None) -> dict:
    """An image config's ``config`` (or ``container_config``) as dockerd re-marshals it for
    ``docker image inspect``: Go's field order, empty values read back as the field's zero
    value (an empty or null string field is ""), the ``omitempty`` ones left out when
    empty. Only the known fields."""
    raw = raw or {}
    out = {}
    for key, zero in CONTAINER_CONFIG_FIELDS:
        if key in raw and raw[key] not in (None, "", False, [], {}):
            out[key] = raw[key]
        elif zero is not OMITEMPTY:
            out[key] = raw.get(key, zero) if zero is None else zero
    return out


def in_field_order(cfg: dict) -> dict:
    """``cfg`` with its container.Config fields in Go's order, values untouched; keys that
    are not fields of container.Config follow, in their order."""
    out = {key: cfg[key] for key in _FIELD_NAMES if key in cfg}
    out.update((key, value) for key, value in cfg.items() if key not in out)
    return out
