"""Site-wide request guards that run before any view."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse


class BoundedQueryMiddleware:
    """Refuses with 400 a request whose query string has a parameter name or value longer
    than ``DOCKWEB_MAX_QUERY_PARAM`` characters, before any view, form or service reads it:
    no filter, search or pattern a view hands on can be made arbitrarily long. (The number
    of parameters is bounded by Django's DATA_UPLOAD_MAX_NUMBER_FIELDS.)"""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DOCKWEB_MAX_QUERY_PARAM
        if len(request.META.get("QUERY_STRING", "")) > limit:
            for key, values in request.GET.lists():
                for value in [key, *values]:
                    if len(value) > limit:
                        return _too_long(request, key, limit)
        return self.get_response(request)


def _too_long(request: HttpRequest, key: str, limit: int) -> HttpResponse:
    shown = key if len(key) <= 40 else key[:40] + "…"
    message = f"query parameter {shown!r} is longer than {limit} characters"
    if request.path.startswith("/api/"):
        return JsonResponse({"error": message}, status=400)
    return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
