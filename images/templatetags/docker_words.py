"""Docker's English words on the pages, in the page's language: layer states of a pull
(``Pulling fs layer`` … ``Pull complete``), pull messages (``Digest:``, ``Status: Downloaded
newer image for …``), a container's STATUS (``Up 3 seconds``, ``Exited (0) 2 minutes
ago``) and its health (``unhealthy``). The CLI and the Engine API keep Docker's words; only
the pages translate them. Text these patterns do not know is shown as it is."""

from __future__ import annotations

import re

from django import template
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, pgettext_lazy

register = template.Library()

LAYER_STATES = {
    "Pulling fs layer": gettext_lazy("Pulling fs layer"),
    "Waiting": gettext_lazy("Waiting"),
    "Downloading": gettext_lazy("Downloading"),
    "Verifying Checksum": gettext_lazy("Verifying Checksum"),
    "Download complete": gettext_lazy("Download complete"),
    "Extracting": gettext_lazy("Extracting"),
    "Pull complete": gettext_lazy("Pull complete"),
    "Already exists": gettext_lazy("Already exists"),
}
_RETRYING = re.compile(r"Retrying in (\d+) seconds?")


@register.filter
def layer_state(text: str) -> str:
    """A layer's state as ``docker pull`` prints it, translated."""
    text = str(text or "")
    if text in LAYER_STATES:
        return str(LAYER_STATES[text])
    m = _RETRYING.fullmatch(text)
    if m:
        n = int(m.group(1))
        return ngettext("Retrying in %(n)d second", "Retrying in %(n)d seconds", n) % {"n": n}
    return text


_PULLING_FROM = re.compile(r"(?P<ref>\S+): Pulling from (?P<repo>\S+)")


@register.filter
def pull_message(text: str) -> str:
    """A line ``docker pull`` prints without a layer ID, translated."""
    text = str(text or "")
    status = text.removeprefix("Status: ")
    prefix = _("Status: ") if status != text else ""
    for english, words in (
        ("Downloaded newer image for ", _("Downloaded newer image for %(name)s")),
        ("Image is up to date for ", _("Image is up to date for %(name)s")),
    ):
        if status.startswith(english):
            return prefix + words % {"name": status.removeprefix(english)}
    if text.startswith("Digest: "):
        return _("Digest: %(digest)s") % {"digest": text.removeprefix("Digest: ")}
    m = _PULLING_FROM.fullmatch(text)
    if m:
        return _("%(ref)s: Pulling from %(repo)s") % m.groupdict()
    return text


def _duration(text: str) -> str | None:
    """docker/go-units HumanDuration's words, translated (None: not one of them)."""
    fixed = {
        "Less than a second": _("Less than a second"),
        "About a minute": _("About a minute"),
        "About an hour": _("About an hour"),
    }
    if text in fixed:
        return fixed[text]
    m = re.fullmatch(r"(\d+) (second|minute|hour|day|week|month|year)s?", text)
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2)
    words = {
        "second": ngettext("%(n)d second", "%(n)d seconds", n),
        "minute": ngettext("%(n)d minute", "%(n)d minutes", n),
        "hour": ngettext("%(n)d hour", "%(n)d hours", n),
        "day": ngettext("%(n)d day", "%(n)d days", n),
        "week": ngettext("%(n)d week", "%(n)d weeks", n),
        "month": ngettext("%(n)d month", "%(n)d months", n),
        "year": ngettext("%(n)d year", "%(n)d years", n),
    }
    return words[unit] % {"n": n}


_UP = re.compile(
    r"Up (?P<d>.+?)(?P<paused> \(Paused\))?(?P<health> \((?:healthy|unhealthy|health: starting)\))?"
)
_EXITED = re.compile(r"(?P<what>Exited|Restarting) \((?P<code>-?\d+)\) (?P<d>.+) ago")
_HEALTH = {
    " (healthy)": gettext_lazy(" (healthy)"),
    " (unhealthy)": gettext_lazy(" (unhealthy)"),
    " (health: starting)": gettext_lazy(" (health: starting)"),
}


@register.filter
def container_status(text: str) -> str:
    """A container's STATUS column (dockerd's State.String()), translated."""
    text = str(text or "")
    fixed = {
        "Created": _("Created"),
        "Removal In Progress": _("Removal In Progress"),
        "Dead": _("Dead"),
        "Exited": _("Exited"),
    }
    if text in fixed:
        return fixed[text]
    m = _EXITED.fullmatch(text)
    if m and (d := _duration(m.group("d"))) is not None:
        if m.group("what") == "Exited":
            return _("Exited (%(code)s) %(duration)s ago") % {
                "code": m.group("code"),
                "duration": d,
            }
        return _("Restarting (%(code)s) %(duration)s ago") % {
            "code": m.group("code"),
            "duration": d,
        }
    m = _UP.fullmatch(text)
    if m and (d := _duration(m.group("d"))) is not None:
        words = _("Up %(duration)s") % {"duration": d}
        if m.group("paused"):
            words += _(" (Paused)")
        if m.group("health"):
            words += str(_HEALTH[m.group("health")])
        return words
    return text


HEALTH_STATES = {
    "starting": pgettext_lazy("health", "starting"),
    "healthy": pgettext_lazy("health", "healthy"),
    "unhealthy": pgettext_lazy("health", "unhealthy"),
}


@register.filter
def health_status(text: str) -> str:
    """A container's ``State.Health.Status`` (starting, healthy, unhealthy), translated."""
    text = str(text or "")
    return str(HEALTH_STATES.get(text, text))
