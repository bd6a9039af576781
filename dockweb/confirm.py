"""Ask before a destructive action: one rule for every page.

A destructive form carries ``ask=1``. With JavaScript, dockweb.js opens the one confirmation
dialog (base.html) and, once the person confirms, sends the form with ``confirmed=1`` too.
Without JavaScript the form arrives with ``ask=1`` only, and the view answers with a
confirmation page (``ask_first``) naming the target, whose button sends the same fields
with ``confirmed=1``. A POST without ``ask`` (the tests, a script) acts at once, as before.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

HIDDEN = {"csrfmiddlewaretoken", "ask", "confirmed"}


def needs_confirmation(request: HttpRequest) -> bool:
    """The form asked to be confirmed and the confirmation has not been given."""
    return request.POST.get("ask") == "1" and request.POST.get("confirmed") != "1"


def ask_first(
    request: HttpRequest,
    *,
    question: str,
    target: str,
    action_label: str,
    cancel_url: str,
    detail: str = "",
    page: str = "",
) -> HttpResponse:
    """The confirmation page: the question, the target named, and the same form again."""
    fields = [
        (name, value)
        for name, values in request.POST.lists()
        if name not in HIDDEN
        for value in values
    ]
    return render(
        request,
        "confirm/confirm.html",
        {
            "question": question,
            "target": target,
            "detail": detail,
            "action_label": action_label,
            "action_url": request.path,
            "fields": fields,
            "cancel_url": cancel_url,
            "page": page,
        },
    )
