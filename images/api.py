"""JSON API for images, pulls and operations (docs/api.md).

Session authentication, like the pages: anonymous requests are sent to the login form by
LoginRequiredMiddleware, and POSTs need the CSRF token (``X-CSRFToken`` header). Views
parse input, call a service, and answer JSON; they never touch the store.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from access import masking
from access.audit import audit
from access.roles import ADMIN, OPERATOR, role_required
from dockweb.runtime.errors import Conflict, DockwebError, InvalidArgument, NotFound, Unavailable
from dockweb.runtime.manifest import parse_platform
from images import services
from images.models import Operation, Pull

RECENT_PULLS = 50
# as the Pull row's column
PLATFORM_MAX = 64
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class BadRequest(Exception):
    pass


# An error's category -> the HTTP status moby's errdefs answer it with.
_CATEGORY_STATUS = ((NotFound, 404), (Conflict, 409), (InvalidArgument, 400), (Unavailable, 503))


def _error(message: str, status: int, **extra) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def _category_status(err: DockwebError) -> int | None:
    """The HTTP status of ``err``'s category; None when it has none (a server error)."""
    for category, status in _CATEGORY_STATUS:
        if isinstance(err, category):
            return status
    return None


def _flag(value, name: str, default: bool | None = False) -> bool | None:
    """A boolean parameter: true/false, 1/0, yes/no, on/off (JSON booleans too)."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BadRequest(f"{name}={value!r}: use true or false")


def _body(request: HttpRequest) -> dict:
    """A POST's parameters, from a JSON object or a form."""
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError as err:
            raise BadRequest(f"the body is not valid JSON: {err}") from None
        except RecursionError:
            raise BadRequest("the body is not valid JSON: nested too deeply") from None
        if not isinstance(data, dict):
            raise BadRequest("the body must be a JSON object")
        return data
    return request.POST.dict()


def _text(data: dict, name: str, *, required: bool = False) -> str:
    value = data.get(name, "")
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    if required and not value.strip():
        raise BadRequest(f"{name} is required")
    return value


def _platform(data: dict) -> str:
    """``platform``: empty, or ``os[/arch[/variant]]`` as containerd parses it (each part
    letters, digits, ``_``, ``.`` and ``-``), at most PLATFORM_MAX characters."""
    platform = _text(data, "platform").strip()
    if len(platform) > PLATFORM_MAX:
        raise BadRequest(f"platform is longer than {PLATFORM_MAX} characters")
    if platform:
        parse_platform(platform)  # ValueError: '"x/": invalid platform specifier'
    return platform


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def pull_json(p: Pull, *, layers: bool = True) -> dict:
    eta = p.eta
    out = {
        "id": p.pk,
        "url": reverse("api:pull", args=[p.pk]),
        "reference": p.reference,
        "normalized": p.normalized,
        "platform": p.platform,
        "status": p.status,
        "active": p.is_active,
        "cancel_requested": p.cancel_requested,
        "created_at": _iso(p.created_at),
        "started_at": _iso(p.started_at),
        "finished_at": _iso(p.finished_at),
        "total_bytes": p.total_bytes,
        "downloaded_bytes": p.downloaded_bytes,
        "percent": p.percent,
        "speed": round(p.speed, 1),
        "eta": round(eta.total_seconds(), 1) if eta is not None else None,
        "messages": p.messages,
        "manifest_digest": p.manifest_digest,
        "image_id": p.image_id,
        "status_text": p.status_text,
        "error": p.error,
    }
    if layers:
        out["layers"] = [
            {
                "position": la.position,
                "id": la.short_id,
                "digest": la.digest,
                "status": la.status,
                "current": la.current,
                "total": la.total,
                "percent": la.percent,
            }
            for la in p.layers.all()
        ]
    return out


def operation_json(op: Operation) -> dict:
    return {
        "id": op.pk,
        "url": reverse("api:operation", args=[op.pk]),
        "kind": op.kind,
        "args": op.args,
        "status": op.status,
        "active": op.is_active,
        "result": op.result,
        "error": op.error,
        "conflict": op.conflict,
        "freed_bytes": op.freed_bytes,
        "image_id": op.image_id,
        "deleted_layers": op.deleted_layers,
        "references_left": op.references_left,
        "tags_left": op.tags_left,
        "summary": services.untag_summary(op),
        "created_at": _iso(op.created_at),
        "finished_at": _iso(op.finished_at),
    }


@login_required
@require_GET
def images(request: HttpRequest) -> JsonResponse:
    """``docker images``: ?all=1&digests=1&no_trunc=1&dangling=true|false&reference=PATTERN."""
    q = request.GET
    try:
        rows, totals = services.image_table(
            all=_flag(q.get("all"), "all"),
            digests=_flag(q.get("digests"), "digests"),
            no_trunc=_flag(q.get("no_trunc"), "no_trunc"),
            dangling=_flag(q.get("dangling"), "dangling", None),
            reference=q.get("reference", ""),
        )
    except (BadRequest, DockwebError) as err:
        return _error(str(err), 400)
    return JsonResponse({"images": rows, "totals": totals})


@login_required
@require_GET
def image(request: HttpRequest, key: str) -> JsonResponse:
    try:
        found = services.get_image(key)
    except DockwebError as err:
        status = _category_status(err)
        if status is None:
            raise
        return _error(str(err), status)
    detail = services.image_detail(found)
    if not masking.shows_secrets(request.user):
        detail = masking.image_detail(detail)
    return JsonResponse(detail)


@login_required
@role_required(OPERATOR)
@require_http_methods(["GET", "POST"])
def pulls(request: HttpRequest) -> JsonResponse:
    """GET: active pulls, then the most recent ones. POST {reference, platform}: start one."""
    if request.method == "GET":
        try:
            active = _flag(request.GET.get("active"), "active")
        except BadRequest as err:
            return _error(str(err), 400)
        if active:
            rows = list(services.active_pulls())
        else:
            rows = list(Pull.objects.order_by("-created_at", "-pk")[:RECENT_PULLS])
        return JsonResponse(
            {"pulls": [_for_viewer(request, pull_json(p, layers=False)) for p in rows]}
        )
    try:
        data = _body(request)
        started = services.start_pull(
            _text(data, "reference", required=True),
            platform=_platform(data),
            user=request.user,
        )
    except (BadRequest, DockwebError, ValueError) as err:
        return _error(str(err), 400)
    audit(request, "image.pull", started.reference, platform=started.platform, pull=started.pk)
    response = JsonResponse(pull_json(started), status=202)
    response["Location"] = reverse("api:pull", args=[started.pk])
    return response


def _for_viewer(request: HttpRequest, out: dict) -> dict:
    """A pull's or operation's JSON as ``request.user`` may read it: no host paths in its
    error for a viewer (access/masking.py)."""
    if out.get("error") and not masking.shows_secrets(request.user):
        out["error"] = masking.paths(out["error"])
    return out


@login_required
@require_GET
def pull(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse(_for_viewer(request, pull_json(get_object_or_404(Pull, pk=pk))))


@login_required
@role_required(OPERATOR)
@require_POST
def pull_cancel(request: HttpRequest, pk: int) -> JsonResponse:
    p = get_object_or_404(Pull, pk=pk)
    services.cancel_pull(p)
    audit(request, "image.pull_cancel", p.reference, pull=p.pk)
    return JsonResponse(pull_json(p), status=202)


def _op_target(op: Operation) -> str:
    args = op.args or {}
    return str(args.get("ref") or args.get("source") or "")


def _start_operation(
    request: HttpRequest, start: Callable[[dict], Operation]
) -> JsonResponse:
    """Queue the operation ``start(body)`` returns and answer 202 with it (audited); a bad
    body or a refusal before queueing is a 400 with the message."""
    try:
        op = start(_body(request))
    except (BadRequest, DockwebError) as err:
        return _error(str(err), 400)
    audit(request, f"image.{op.kind}", _op_target(op), **op.args, operation=op.pk)
    response = JsonResponse(operation_json(op), status=202)
    response["Location"] = reverse("api:operation", args=[op.pk])
    return response


@login_required
@role_required(ADMIN)
@require_POST
def image_remove(request: HttpRequest) -> JsonResponse:
    """``docker rmi``: {ref, force=false, prune=true}."""
    return _start_operation(
        request,
        lambda data: services.start_removal(
            _text(data, "ref", required=True),
            force=_flag(data.get("force"), "force", False),
            prune=_flag(data.get("prune"), "prune", True),
            user=request.user,
        ),
    )


@login_required
@role_required(OPERATOR)
@require_POST
def image_tag(request: HttpRequest) -> JsonResponse:
    """``docker tag``: {source, target}."""
    return _start_operation(
        request,
        lambda data: services.start_tag(
            _text(data, "source", required=True),
            _text(data, "target", required=True),
            user=request.user,
        ),
    )


@login_required
@require_GET
def operation(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse(
        _for_viewer(request, operation_json(get_object_or_404(Operation, pk=pk)))
    )
