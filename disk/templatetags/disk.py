from __future__ import annotations

from django import template
from django.utils.translation import gettext as _

from dockweb.runtime.digest import short_id
from dockweb.runtime.units import human_size

register = template.Library()


@register.filter
def size4(n) -> str:
    """docker's HumanSize (4 significant digits), as system df and prune print."""
    return human_size(int(n or 0), 4)


@register.filter
def size3(n) -> str:
    return human_size(int(n or 0), 3)


@register.filter
def sum_size(items) -> int:
    return sum(int(i.get("size", 0)) for i in items or [])


@register.filter
def short_hex(digest: str) -> str:
    return short_id(str(digest))


@register.filter
def df_type(kind: str) -> str:
    names = {
        "Images": _("Images"),
        "Containers": _("Containers"),
        "Local Volumes": _("Local Volumes"),
        "Build Cache": _("Build Cache"),
    }
    return names.get(kind, kind)
