"""Container and volume pages. Views parse input, call a service in containers/services.py,
and render.

Pages render from the database mirror; changes are queued as ContainerOperation rows that
the worker (root) runs, and the pages poll those rows while they are active. Logs are read
from the container's json-file log by byte offset, so following them costs one small read.
"""

from __future__ import annotations

import json
import shlex

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from access import hostaccess, masking
from access.audit import audit
from access.roles import ADMIN, OPERATOR, forbidden, has_role, role_required
from containers import services
from containers.models import Container, ContainerOperation, Volume
from dockweb.confirm import ask_first, needs_confirmation
from dockweb.jobs import views as jobs_views
from dockweb.runtime.errors import DockwebError, NotFound
from images.models import Image, Reference
from networks import services as network_services
from networks.forms import RunNetworkForm

RECENT_OPERATIONS = 8

# action -> the guard on Container that allows it
ACTIONS = {
    "start": "can_start",
    "stop": "can_stop",
    "restart": "can_restart",
    "kill": "can_kill",
    "pause": "can_pause",
    "unpause": "can_unpause",
    "remove": "can_remove_plain",
}
SNAPSHOTS = {"diff", "top", "stats"}


def _flag(request: HttpRequest, name: str) -> bool:
    return request.GET.get(name, "") not in ("", "0", "false", "off")


def _get_container_or_404(key: str) -> Container:
    try:
        return services.find_container(key)
    except NotFound:
        raise Http404(_("No such container: %(key)s") % {"key": key}) from None


def _next_url(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next", "")
    # a path on this site only ("nan" would be taken for a view name by redirect())
    if target.startswith("/") and url_has_allowed_host_and_scheme(target, {request.get_host()}):
        return target
    return default


# --- containers --------------------------------------------------------------------------


@login_required
@require_GET
@vary_on_headers("HX-Request")
def container_list(request: HttpRequest) -> HttpResponse:
    """`docker ps` (running only with ?running=1): state and the actions each state allows."""
    running_only = _flag(request, "running")
    containers = Container.objects.all()
    if running_only:
        containers = containers.filter(status__in=["running", "paused", "restarting"])
    containers = list(containers)
    operations = list(ContainerOperation.objects.select_related(None)[:RECENT_OPERATIONS])
    template = "containers/containers.html"
    if request.htmx:
        template += "#container_list"
    context = {
        "containers": containers,
        "operations": operations,
        "active": any(op.is_active for op in operations),
        "any_running": any(c.is_running for c in containers),
        "running_only": running_only,
        "page": "containers",
    }
    return render(request, template, context)


def _inspect_json(request: HttpRequest, container: Container) -> str:
    """``docker inspect``'s JSON; for a viewer with env values masked and dockweb's data
    paths shortened (access/masking.py)."""
    if masking.shows_secrets(request.user):
        return json.dumps([container.inspect], indent=4, ensure_ascii=False)
    info = masking.container_json(container.inspect or {})
    return masking.paths(json.dumps([info], indent=4, ensure_ascii=False))


@login_required
@require_GET
@vary_on_headers("HX-Request")
def container_detail(request: HttpRequest, key: str) -> HttpResponse:
    """One container: state, actions, live logs, inspect JSON, and diff/top/stats snapshots."""
    container = _get_container_or_404(key)
    operations = list(
        ContainerOperation.objects.filter(container_id=container.container_id)[:RECENT_OPERATIONS]
    )
    snapshots = {}
    for op in operations:
        if op.kind in SNAPSHOTS and op.kind not in snapshots:
            snapshots[op.kind] = op
    offset = services.tail_offset(container.container_id)
    lines, next_offset = services.read_log(container.container_id, offset)
    template = "containers/container_detail.html"
    if request.htmx:  # a live part of the page
        if request.GET.get("part") == "networks":
            template = "networks/container_networks.html"
        else:
            template += "#container_state"
    context = {
        "c": container,
        "operations": operations,
        "active": any(op.is_active for op in operations),
        "snapshots": snapshots,
        "lines": lines,
        "offset": next_offset,
        "follow": container.is_running,
        "inspect_json": _inspect_json(request, container),
        "networks": network_services.container_networks(container),
        "page": "containers",
    }
    context["connectable"] = [
        n for n in network_services.network_choices()
        if n not in ("host", "none") and n not in {r["network"].name for r in context["networks"]}
    ]
    return render(request, template, context)


@login_required
@require_GET
def container_logs(request: HttpRequest, key: str) -> HttpResponse:
    """New log lines after ?offset=, and the poller that asks for the next ones.

    The poller keeps polling while the container runs (or lines keep coming); once it has
    stopped and everything is shown, it is rendered without a trigger.
    """
    container = _get_container_or_404(key)
    try:
        offset = max(0, int(request.GET.get("offset", "0")))
    except ValueError:
        offset = 0
    lines, next_offset = services.read_log(container.container_id, offset)
    context = {
        "c": container,
        "lines": lines,
        "offset": next_offset,
        "follow": container.is_running or bool(lines),
    }
    return render(request, "containers/container_detail.html#log_chunk", context)


@login_required
@role_required(OPERATOR)
@require_POST
def container_action(request: HttpRequest, key: str, action: str) -> HttpResponse:
    """Queue start/stop/restart/kill/pause/unpause/remove, or a diff/top/stats snapshot."""
    if action == "remove" and not has_role(request.user, ADMIN):
        return forbidden(request, ADMIN)
    container = _get_container_or_404(key)
    detail = redirect("containers:detail", key=container.container_id)
    if action in SNAPSHOTS:
        if action != "diff" and not container.can_exec:
            messages.error(
                request, _("Container %(name)s is not running.") % {"name": container.name}
            )
            return detail
        op = services.start_operation(
            action, {"container": container.container_id}, user=request.user,
            container_id=container.container_id,
        )
        # a snapshot reads the container's processes, files or usage: recorded as changes are
        audit(request, f"container.{action}", container.name, operation=op.pk)
        return redirect(f"{detail.url}#{action}")
    if action not in ACTIONS:
        raise Http404(_("Unknown action."))
    force = request.POST.get("force") == "1"
    if action == "remove":
        allowed = container.can_remove(force)
    else:
        allowed = getattr(container, ACTIONS[action])
    if not allowed:
        messages.error(
            request,
            _("Cannot %(action)s %(name)s while it is %(status)s.")
            % {"action": action, "name": container.name, "status": container.get_status_display()},
        )
        return redirect(_next_url(request, detail.url))
    if action in CONFIRM and needs_confirmation(request):
        question, label, detail_text = CONFIRM[action]
        return ask_first(
            request,
            question=str(question),
            target=container.name,
            detail=str(detail_text),
            action_label=str(label),
            cancel_url=_next_url(request, detail.url),
            page="containers",
        )
    args: dict = {"container": container.container_id}
    if action == "remove":
        args.update(force=force, volumes=request.POST.get("volumes") == "1")
    op = services.start_operation(
        action,
        {**args, "container_name": container.name},
        user=request.user,
        container_id=container.container_id,
    )
    audit(request, f"container.{action}", container.name, **args, operation=op.pk)
    if request.htmx or action == "remove":
        return _operation_started(request, op)
    return redirect(_next_url(request, detail.url))


# The actions that ask first: (question, button, what it means), naming the container.
CONFIRM = {
    "kill": (
        gettext_lazy("Kill this container?"),
        gettext_lazy("Kill"),
        gettext_lazy("Its processes get SIGKILL at once, without a chance to finish."),
    ),
    "remove": (
        gettext_lazy("Remove this container?"),
        gettext_lazy("Remove"),
        gettext_lazy("Its writable layer and logs are deleted; its volumes are kept."),
    ),
}


def _image_choices() -> list[str]:
    tags = [
        r.familiar
        for r in Reference.objects.exclude(tag="").select_related("repository")
    ]
    return sorted(set(tags))


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


@login_required
@role_required(OPERATOR)
@require_http_methods(["GET", "POST"])
def container_run(request: HttpRequest) -> HttpResponse:
    """The Run form (`docker run -d`); POST queues the run and shows its operation."""
    source = request.POST if request.method == "POST" else request.GET
    form = {
        "image": source.get("image", "").strip(),
        "command": source.get("command", ""),
        "entrypoint": source.get("entrypoint", ""),
        "env": source.get("env", ""),
        "volumes": source.get("volumes", ""),
        "name": source.get("name", "").strip(),
        "workdir": source.get("workdir", "").strip(),
        "user": source.get("user", "").strip(),
        "hostname": source.get("hostname", "").strip(),
        "network": source.get("network", "bridge"),
        "network_alias": source.get("network_alias", ""),
        "ip": source.get("ip", "").strip(),
        "dns": source.get("dns", ""),
        "dns_search": source.get("dns_search", ""),
        "publish_all": source.get("publish_all") == "1",
        "auto_remove": source.get("auto_remove") == "1",
        "memory": source.get("memory", "").strip(),
        "cpus": source.get("cpus", "").strip(),
        "add_host": source.get("add_host", ""),
        "read_only": source.get("read_only") == "1",
        "publish": source.get("publish", ""),
        "restart": source.get("restart", "no"),
    }
    error = None
    network_choices = network_services.network_choices()
    if request.method == "POST":
        netform = RunNetworkForm(request.POST, choices=network_choices)
        try:
            cmd = shlex.split(form["command"]) if form["command"].strip() else None
        except ValueError as e:
            error = _("The command does not parse: %(error)s") % {"error": e}
        else:
            if not netform.is_valid():
                error = netform.first_error()
        if error is None:
            options = {
                "name": form["name"],
                "env": _lines(form["env"]),
                "volumes": _lines(form["volumes"]),
                "workdir": form["workdir"],
                "user": form["user"],
                "hostname": form["hostname"],
                **netform.options(),
                "auto_remove": form["auto_remove"],
                "memory": form["memory"],
                "cpus": form["cpus"],
                "add_host": _lines(form["add_host"]),
                "read_only": form["read_only"],
                "publish": _lines(form["publish"]),
                "restart": form["restart"],
            }
            if form["entrypoint"].strip():
                options["entrypoint"] = form["entrypoint"].strip()
            try:
                op = services.start_run(form["image"], cmd, by=request.user, **options)
            except DockwebError as e:
                error = str(e)
                if isinstance(e, hostaccess.HostAccessRefused):  # who tried to reach the host
                    audit(request, "container.run_refused", form["image"], reason=error)
            else:
                # env names only: values often carry passwords
                env_names = [e.split("=", 1)[0] for e in options["env"]]
                audit(
                    request, "container.run", form["image"], cmd=cmd, env=env_names,
                    **{k: v for k, v in options.items() if k != "env"}, operation=op.pk,
                )
                return redirect("containers:operation", pk=op.pk)
    image_row = None
    if form["image"]:
        image_row = Image.objects.filter(image_id=form["image"]).first()
    context = {
        "form": form,
        "error": error,
        "images": _image_choices(),
        "image_row": image_row,
        "restart_policies": ("no", "on-failure", "always", "unless-stopped"),
        "networks": network_choices,
        "bind_roots": hostaccess.bind_roots(),
        "page": "containers",
    }
    return render(request, "containers/run.html", context, status=400 if error else 200)


def operation_context(op: ContainerOperation) -> dict:
    """The container an operation is about, for the job page (dockweb.jobs.views)."""
    container = None
    if op.container_id:
        container = Container.objects.filter(container_id=op.container_id).first()
    return {"container": container, "page": "containers"}


# --- volumes -----------------------------------------------------------------------------


def _volume_users() -> dict[str, list[Container]]:
    users: dict[str, list[Container]] = {}
    for c in Container.objects.all():
        for m in c.mounts:
            if m.get("Type") == "volume":
                users.setdefault(m.get("Name", ""), []).append(c)
    return users


@login_required
@role_required(OPERATOR)
@require_http_methods(["GET", "POST"])
def volumes(request: HttpRequest) -> HttpResponse:
    """`docker volume ls`, and `volume create` on POST."""
    error = None
    name = ""
    if request.method == "POST":
        name = request.POST.get("name", "").strip()
        labels = _lines(request.POST.get("labels", ""))
        op = services.start_operation(
            ContainerOperation.Kind.VOLUME_CREATE, {"name": name, "labels": labels},
            user=request.user,
        )
        audit(request, "volume.create", name, labels=labels, operation=op.pk)
        return redirect("containers:operation", pk=op.pk)
    users = _volume_users()
    rows = [{"volume": v, "users": users.get(v.name, [])} for v in Volume.objects.all()]
    volume_operations = ContainerOperation.objects.filter(kind__startswith="volume_")
    context = {
        "rows": rows,
        "name": name,
        "error": error,
        "unused": [r["volume"] for r in rows if not r["users"]],
        "operations": volume_operations[:RECENT_OPERATIONS],
        "page": "containers",
    }
    return render(request, "containers/volumes.html", context)


@login_required
@role_required(ADMIN)
@require_POST
def volume_remove(request: HttpRequest) -> HttpResponse:
    name = request.POST.get("name", "").strip()
    if not name:
        raise Http404(_("Nothing to remove."))
    if needs_confirmation(request):
        return ask_first(
            request,
            question=_("Remove this volume?"),
            target=name,
            detail=_("Its data is deleted."),
            action_label=_("Remove"),
            cancel_url=reverse("volumes:list"),
            page="containers",
        )
    op = services.start_operation(
        ContainerOperation.Kind.VOLUME_REMOVE, {"name": name}, user=request.user
    )
    audit(request, "volume.remove", name, operation=op.pk)
    return _operation_started(request, op)


def _operation_started(request: HttpRequest, op: ContainerOperation) -> HttpResponse:
    """A queued operation: in place for an htmx form, else its page."""
    if request.htmx:
        return jobs_views.inline(
            request,
            op,
            poll_url=reverse("containers:operation", kwargs={"pk": op.pk}),
            parts="containers/operation.html",
            context=operation_context,
        )
    return redirect("containers:operation", pk=op.pk)


@login_required
@role_required(ADMIN)
@require_http_methods(["GET", "POST"])
def volume_prune(request: HttpRequest) -> HttpResponse:
    """GET previews what `docker volume prune` would remove; POST queues it."""
    if request.method == "POST":
        op = services.start_operation(
            ContainerOperation.Kind.VOLUME_PRUNE, {}, user=request.user
        )
        audit(request, "volume.prune", "", operation=op.pk)
        return _operation_started(request, op)
    users = _volume_users()
    context = {
        "unused": [v for v in Volume.objects.all() if not users.get(v.name)],
        "kept": [v for v in Volume.objects.all() if users.get(v.name)],
        "page": "containers",
    }
    return render(request, "containers/volume_prune.html", context)


# --- console -------------------------------------------------------------------------------


@login_required
@role_required(OPERATOR)
@require_http_methods(["GET", "POST"])
def container_console(request: HttpRequest, key: str) -> HttpResponse:
    """Choose a shell (those the image has) and open a console; POST opens it."""
    from containers import console

    c = _get_container_or_404(key)
    if request.method == "POST":
        try:
            session = console.open_console(c, request.POST.get("shell", ""), request.user)
        except console.ConsoleRefused as e:
            messages.error(request, str(e))
            return redirect("containers:console", c.container_id)
        audit(request, "container.console", c.name, shell=request.POST.get("shell", ""))
        return redirect("containers:console_session", session.session_id)
    shells = console.available_shells(c) if c.can_exec else []
    context = {"c": c, "shells": shells, "page": "containers"}
    return render(request, "containers/console.html", context)


def _own_session(request: HttpRequest, sid: str):
    """The session if it is the user's (anyone else gets a 404, as for a missing one)."""
    from containers.models import ConsoleSession

    return get_object_or_404(ConsoleSession, session_id=sid, user=request.user)


@login_required
@require_GET
def console_session(request: HttpRequest, sid: str) -> HttpResponse:
    """The terminal (xterm.js) of one session; an ended session says so and offers a new one."""
    session = _own_session(request, sid)
    c = Container.objects.filter(container_id=session.container_id).first()
    context = {"session": session, "c": c, "page": "containers"}
    return render(request, "containers/console_session.html", context)


@login_required
@require_GET
def console_stream(request: HttpRequest, sid: str) -> HttpResponse:
    """The session's output as Server-Sent Events (``text/event-stream``)."""
    from django.http import StreamingHttpResponse

    from containers import console

    session = _own_session(request, sid)
    if not has_role(request.user, OPERATOR):  # demoted since the session opened
        return forbidden(request, OPERATOR)
    stream = console.event_stream(session)
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass events on at once
    return response


def _console_call(request: HttpRequest, sid: str, action) -> HttpResponse:
    from containers import console

    session = _own_session(request, sid)
    try:
        action(console, session)
    except console.ConsoleRefused as e:
        return HttpResponse(str(e), status=409, content_type="text/plain; charset=utf-8")
    return HttpResponse(status=204)


@login_required
@role_required(OPERATOR)
@require_POST
def console_input(request: HttpRequest, sid: str) -> HttpResponse:
    """Keystrokes or pasted text (``data``), batched by the page."""
    data = request.POST.get("data", "")
    return _console_call(request, sid, lambda console, s: console.send_input(s, data))


@login_required
@role_required(OPERATOR)
@require_POST
def console_resize(request: HttpRequest, sid: str) -> HttpResponse:
    """The terminal's new size (``cols``, ``rows``)."""
    try:
        cols, rows = int(request.POST.get("cols", "")), int(request.POST.get("rows", ""))
    except ValueError:
        return HttpResponse(_("cols and rows must be numbers"), status=400)
    return _console_call(request, sid, lambda console, s: console.send_resize(s, cols, rows))


@login_required
@role_required(OPERATOR)
@require_POST
def console_close(request: HttpRequest, sid: str) -> HttpResponse:
    """End the session (the page calls it when it goes away); the container keeps running."""
    return _console_call(request, sid, lambda console, s: console.close_console(s))
