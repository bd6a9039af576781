"""What every page's navigation shows: the pulls that are queued or running."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from images import services

# The navigation links this many; the count covers them all.
NAV_PULLS = 5


def active_pulls(request: HttpRequest) -> dict:
    """``active_pulls`` (the first few, newest first) and ``active_pull_count``.

    Lazy: a page that does not show the navigation (a fragment, the login form) runs no query.
    """
    if not request.user.is_authenticated:
        return {}
    pulls = SimpleLazyObject(lambda: list(services.active_pulls()[:NAV_PULLS]))
    count = SimpleLazyObject(lambda: services.active_pulls().count())
    return {"active_pulls": pulls, "active_pull_count": count}
