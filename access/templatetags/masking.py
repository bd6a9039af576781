"""Template filters that mask secret values for viewers (access/masking.py); each takes
the page's ``can`` (access.roles.Can): ``{{ e|env_for:can }}``,
``{{ h.created_by|created_by_for:can }}``, ``{{ op.error|paths_for:can }}``,
``{{ c.username|secret_for:can }}``."""

from __future__ import annotations

from django import template

from access import masking

register = template.Library()


def _shows(can) -> bool:
    return bool(getattr(can, "operate", False))


@register.filter
def env_for(value, can):
    return value if _shows(can) else masking.env_entry(value)


@register.filter
def created_by_for(value, can):
    return value if _shows(can) else masking.created_by(value)


@register.filter
def paths_for(value, can):
    return value if _shows(can) or not value else masking.paths(value)


@register.filter
def secret_for(value, can):
    return value if _shows(can) or not value else masking.MASK
