"""Image pages. Views parse input, call a service in images/services.py, and render."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

# The CLI's `docker images` row formatting, shared so the page shows the same columns.
from dockweb.cli.main import image_rows
from dockweb.runtime.errors import DockwebError


def _services():
    """images.services, or None while it has not landed yet."""
    try:
        from images import services
    except ImportError:
        return None
    return services


@vary_on_headers("HX-Request")
def image_list(request: HttpRequest) -> HttpResponse:
    """The Images page; with HX-Request, only its table (the `image_list` partial).

    Rows are those of `dockweb images` (one per repository:tag, short IDs, "2 weeks ago",
    Docker's sizes), so the page and the CLI always agree.
    """
    services = _services()
    available = services is not None and hasattr(services, "list_images")
    rows: list[dict] = []
    error = None
    if available:
        try:
            rows = image_rows(services.list_images(), digests=False, trunc=True)
        except DockwebError as e:
            error = str(e)
    template = "images/images.html"
    if request.htmx:
        template += "#image_list"
    context = {"images": rows, "available": available, "error": error, "page": "images"}
    return render(request, template, context)


@require_http_methods(["GET", "POST"])
def pull(request: HttpRequest) -> HttpResponse:
    """The Pull page: a form for a reference; POST hands it to images.services.start_pull."""
    reference = ""
    if request.method == "POST":
        reference = request.POST.get("reference", "").strip()
        services = _services()
        if not reference:
            messages.error(request, _("Enter an image reference, such as busybox:latest."))
        elif services is None or not hasattr(services, "start_pull"):
            messages.error(request, _("Pulling is not available yet."))
        else:
            services.start_pull(reference)
            messages.success(request, _("Pulling %(reference)s.") % {"reference": reference})
            return redirect("images:pull")
    return render(request, "images/pull.html", {"reference": reference, "page": "pull"})
