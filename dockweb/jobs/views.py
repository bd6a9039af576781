"""One operation page for every kind of job: it renders from the row, and an htmx poll gets
only the status fragment, which polls again only while the job is active."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.decorators import login_required
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from dockweb.jobs.runner import kind_of

TEMPLATE = "jobs/operation.html"


@login_required
@require_GET
@vary_on_headers("HX-Request")
def operation(
    request: HttpRequest,
    pk: int,
    *,
    model: type[models.Model],
    parts: str,
    context: Callable[[models.Model], dict] | None = None,
    status_id: str = "operation-status",
    poll: str = "500ms",
) -> HttpResponse:
    """A job's page: queued, running, then its outcome. The URLconf names the kind's
    ``model``, the template whose partials hold its words (``parts``) and a function giving
    the rest of the context, e.g.::

        path("operations/<id:pk>/", jobs_views.operation,
             {"model": Operation, "parts": "images/operation.html"}, name="operation")
    """
    op = get_object_or_404(model, pk=pk)
    template = TEMPLATE + ("#job_status" if request.htmx else "")
    ctx = {"op": op, "parts": parts, "status_id": status_id, "poll": poll}
    if request.htmx and request.GET.get("inline") == "1":
        # polled from a page where the job was started in place (``inline``)
        ctx.update(inline=True, poll_url=request.get_full_path())
    # the live notice of this row (dockweb/live.py: the jobs layer publishes it)
    ctx["live_topic"] = f"{kind_of(model).name}-{op.pk}"
    if context is not None:
        ctx.update(context(op))
    response = render(request, template, ctx)
    if request.htmx and not op.is_active:
        # the parts of a page that show what the job changed refresh themselves on this
        response["HX-Trigger"] = CHANGED
    return response


CHANGED = "dockweb:changed"


def inline(
    request: HttpRequest,
    op: models.Model,
    *,
    poll_url: str,
    parts: str,
    context: Callable[[models.Model], dict] | None = None,
    status_id: str = "operation-status",
    poll: str = "500ms",
) -> HttpResponse:
    """A job just queued by an htmx form, shown in place (base.html's #action-result): the
    same status fragment as the job's page, polling ``poll_url`` (that page) until done."""
    ctx = {
        "op": op,
        "parts": parts,
        "status_id": status_id,
        "poll": poll,
        "poll_url": f"{poll_url}?inline=1",
        "inline": True,
        "live_topic": f"{kind_of(type(op)).name}-{op.pk}",
    }
    if context is not None:
        ctx.update(context(op))
    response = render(request, TEMPLATE + "#job_status", ctx)
    response["HX-Trigger"] = CHANGED
    return response
