"""The audit log page (admins only)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from access.models import AuditEvent
from access.roles import ADMIN, forbidden, has_role

EVENTS_PER_PAGE = 100


@login_required
@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    """Audit events, newest first; ``?actor=`` and ``?action=`` filter them."""
    if not has_role(request.user, ADMIN):
        # reading the log is an admin's business too, not only changing things
        return forbidden(request, ADMIN)
    events = AuditEvent.objects.all()
    actor = request.GET.get("actor", "")
    action = request.GET.get("action", "")
    if actor:
        events = events.filter(actor=actor)
    if action:
        events = events.filter(action=action)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page_obj": Paginator(events, EVENTS_PER_PAGE).get_page(request.GET.get("page")),
        "actors": AuditEvent.objects.order_by("actor").values_list("actor", flat=True).distinct(),
        "actions": AuditEvent.objects.order_by("action")
        .values_list("action", flat=True)
        .distinct(),
        "actor": actor,
        "action": action,
        "query": query.urlencode(),
        "page": "audit",
    }
    return render(request, "access/audit.html", context)
