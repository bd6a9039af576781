"""Container pages. Views parse input, call a service in containers/services.py, and render."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.vary import vary_on_headers


@vary_on_headers("HX-Request")
def container_list(request: HttpRequest) -> HttpResponse:
    """The Containers page. The runtime cannot run containers yet, so the list is empty."""
    template = "containers/containers.html"
    if request.htmx:
        template += "#container_list"
    return render(request, template, {"containers": [], "page": "containers"})
