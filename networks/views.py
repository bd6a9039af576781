"""The Networks pages: list and create, inspect with the connected containers, remove,
prune with a preview; connect and disconnect from the container page.

Pages render from the database mirror (``networks.mirror``); changes are queued as
``NetworkOperation`` rows that the worker (root) runs. Viewers read, operators create,
connect and disconnect, admins remove and prune (as for volumes).
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from access.audit import audit
from access.roles import ADMIN, OPERATOR, role_required
from containers import services as container_services
from containers.models import Container
from dockweb.confirm import ask_first, needs_confirmation
from dockweb.runtime.errors import NotFound
from networks import services
from networks.forms import ConnectForm, NetworkCreateForm
from networks.models import Network, NetworkOperation

RECENT_OPERATIONS = 8


def _network_or_404(key: str) -> Network:
    try:
        return services.find_network(key)
    except NotFound as e:
        raise Http404(str(e)) from None


def _container_or_404(key: str) -> Container:
    try:
        return container_services.find_container(key)
    except NotFound as e:
        raise Http404(str(e)) from None


@role_required(OPERATOR)
@require_http_methods(["GET", "POST"])
def network_list(request: HttpRequest) -> HttpResponse:
    """``docker network ls``, and ``network create`` on POST (operators)."""
    form = NetworkCreateForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        options = form.options()
        op = services.start_operation(NetworkOperation.Kind.CREATE, options, user=request.user)
        audit(request, "network.create", options["name"], **options, operation=op.pk)
        return redirect("networks:operation", pk=op.pk)
    context = {
        "rows": services.network_rows(),
        "form": form,
        "operations": NetworkOperation.objects.all()[:RECENT_OPERATIONS],
        "page": "networks",
    }
    return render(request, "networks/networks.html", context, status=400 if form.errors else 200)


@require_GET
def network_detail(request: HttpRequest, key: str) -> HttpResponse:
    """``docker network inspect``: its settings and the containers on it with their
    addresses."""
    net = _network_or_404(key)
    context = {
        "net": net,
        "members": services.network_detail(net),
        "operations": NetworkOperation.objects.filter(network_id=net.network_id)[
            :RECENT_OPERATIONS
        ],
        "page": "networks",
    }
    return render(request, "networks/network_detail.html", context)


@role_required(ADMIN)
@require_POST
def network_remove(request: HttpRequest, key: str) -> HttpResponse:
    """``docker network rm``: the worker answers with dockerd's refusals (pre-defined,
    active endpoints)."""
    net = _network_or_404(key)
    if needs_confirmation(request):
        return ask_first(
            request,
            question=str(_("Remove this network?")),
            target=net.name,
            action_label=str(_("Remove")),
            cancel_url=reverse("networks:detail", args=[net.network_id]),
            page="networks",
        )
    op = services.start_operation(
        NetworkOperation.Kind.REMOVE,
        {"network": net.network_id, "name": net.name},
        user=request.user,
        network_id=net.network_id,
    )
    audit(request, "network.remove", net.name, operation=op.pk)
    return redirect("networks:operation", pk=op.pk)


@role_required(ADMIN)
@require_http_methods(["GET", "POST"])
def network_prune(request: HttpRequest) -> HttpResponse:
    """GET previews what ``docker network prune`` would remove; POST queues it."""
    if request.method == "POST":
        op = services.start_operation(NetworkOperation.Kind.PRUNE, {}, user=request.user)
        audit(request, "network.prune", "", operation=op.pk)
        return redirect("networks:operation", pk=op.pk)
    gone, kept = services.prune_preview()
    return render(
        request, "networks/network_prune.html", {"gone": gone, "kept": kept, "page": "networks"}
    )


@role_required(OPERATOR)
@require_POST
def network_connect(request: HttpRequest) -> HttpResponse:
    """``docker network connect [--alias] [--ip] NETWORK CONTAINER`` (the container page)."""
    container = _container_or_404(request.POST.get("container", ""))
    form = ConnectForm(request.POST)
    if not form.is_valid():
        error = next(iter(form.errors.values()))[0]
        return HttpResponse(error, status=400, content_type="text/plain; charset=utf-8")
    net = _network_or_404(form.cleaned_data["network"])
    args = {
        "network": net.name,
        "container": container.container_id,
        "aliases": form.cleaned_data["aliases"],
        "ip": form.cleaned_data["ip"],
    }
    op = services.start_operation(
        NetworkOperation.Kind.CONNECT,
        args,
        user=request.user,
        network_id=net.network_id,
        container_id=container.container_id,
    )
    audit(request, "network.connect", net.name, **args, operation=op.pk)
    return redirect("networks:operation", pk=op.pk)


@role_required(OPERATOR)
@require_POST
def network_disconnect(request: HttpRequest) -> HttpResponse:
    """``docker network disconnect NETWORK CONTAINER``."""
    container = _container_or_404(request.POST.get("container", ""))
    net = _network_or_404(request.POST.get("network", ""))
    if needs_confirmation(request):
        return ask_first(
            request,
            question=str(_("Disconnect this container from the network?")),
            target=f"{container.name} · {net.name}",
            action_label=str(_("Disconnect")),
            cancel_url=reverse("containers:detail", args=[container.container_id]),
            page="containers",
        )
    args = {"network": net.name, "container": container.container_id}
    op = services.start_operation(
        NetworkOperation.Kind.DISCONNECT,
        args,
        user=request.user,
        network_id=net.network_id,
        container_id=container.container_id,
    )
    audit(request, "network.disconnect", net.name, **args, operation=op.pk)
    return redirect("networks:operation", pk=op.pk)


def operation_context(op: NetworkOperation) -> dict:
    """The network and container an operation is about, for the job page."""
    net = Network.objects.filter(network_id=op.network_id).first() if op.network_id else None
    container = (
        Container.objects.filter(container_id=op.container_id).first() if op.container_id else None
    )
    return {"net": net, "container": container, "page": "networks"}
