"""Template filters for dockweb's pages: Docker's sizes, short IDs, ages and durations."""

from __future__ import annotations

import stat
from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from dockweb.runtime.digest import short_id
from dockweb.runtime.units import human_size
from images.kept import Kept

register = template.Library()


@register.filter
def size(value: float | None) -> str:
    """Docker's SIZE column: decimal units, 3 significant digits (``10.4MB``)."""
    if value is None or value == "":
        return ""
    return human_size(value, 3)


@register.filter
def rate(value: float | None) -> str:
    """A speed in bytes per second (``3.2MB/s``); empty when nothing moved yet."""
    if not value:
        return ""
    return human_size(value, 3) + "/s"


@register.filter
def short(value: str | None) -> str:
    """The 12 hex characters Docker shows for an ID or digest."""
    return short_id(value or "")


@register.filter
def hex_id(value: str | None) -> str:
    """An ID without its algorithm (``sha256:``), as used in page addresses."""
    return (value or "").split(":", 1)[-1]


# since()'s words, per language, time and whole minutes elapsed: a page of a hundred
# images asks for them on every view, and Django's timesince costs 50 µs a call.
_since_words = Kept(4096)


@register.filter
def since(value: datetime | None) -> str:
    """``2 weeks ago``, in the page's language; empty for an unknown time."""
    if not value:
        return ""
    now = timezone.now()
    # timesince(depth=1) reads the elapsed time in whole minutes and calendar units that
    # start on whole days: the same minutes elapsed from the same time give the same words.
    key = (get_language(), value, (now - value) // timedelta(minutes=1))
    words = _since_words.get(key)
    if words is None:
        if key[2] < 1:
            words = _("less than a minute ago")
        else:
            words = _("%(time)s ago") % {"time": timesince(value, now, depth=1)}
        _since_words.keep(key, words)
    return words


@register.filter
def duration(value: timedelta | None) -> str:
    """A short duration for ETAs and elapsed times: ``45s``, ``3m 05s``, ``1h 02m``."""
    if value is None:
        return ""
    seconds = max(0, int(value.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


_FILE_TYPE_BITS = {
    "dir": stat.S_IFDIR,
    "file": stat.S_IFREG,
    "symlink": stat.S_IFLNK,
    "char": stat.S_IFCHR,
    "whiteout": stat.S_IFCHR,
    "block": stat.S_IFBLK,
    "fifo": stat.S_IFIFO,
    "socket": stat.S_IFSOCK,
}


@register.filter
def filemode(mode: int | None, kind: str = "file") -> str:
    """Permission bits as ``ls -l`` shows them (``drwxr-xr-x``), for a layerfs entry type."""
    if mode is None:
        return ""
    return stat.filemode(_FILE_TYPE_BITS.get(kind, stat.S_IFREG) | int(mode))
