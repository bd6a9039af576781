"""The Disk page: where the disk goes, and prune with a preview. Renders from the database."""

from __future__ import annotations

import hashlib
import json

from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from access.audit import audit
from access.roles import ADMIN, OPERATOR, role_required
from disk import services, tasks
from disk.models import PruneOperation, VolumeUsage
from dockweb.jobs import views as jobs_views
from dockweb.runtime.digest import short_id
from dockweb.runtime.diskusage import summary

IMAGE_CHOICES = ("dangling", "all", "")


def _options(data) -> dict:
    images = data.get("images", "dangling")
    return {
        "images": images if images in IMAGE_CHOICES else "dangling",
        "containers": data.get("containers", "on" if "images" not in data else "") != "",
        "volumes": data.get("volumes", "") != "",
    }


def _chart(du: dict) -> tuple[list[dict], int]:
    """Per image: on-disk size split into shared and unique, and the compressed size; the
    widest bar is the largest figure."""
    rows = []
    for im in du["Images"]:
        rows.append(
            {
                "id": short_id(im["Id"]),
                "pk": im["pk"],
                "name": im["RepoTags"][0] if im["RepoTags"] != ["<none>:<none>"] else "<none>",
                "size": im["Size"],
                "shared": im["SharedSize"],
                "unique": im["Size"] - im["SharedSize"],
                "compressed": im["CompressedSize"],
            }
        )
    top = max([max(r["size"], r["compressed"]) for r in rows] or [0]) or 1
    for r in rows:
        r["shared_pct"] = round(r["shared"] * 100 / top, 2)
        r["unique_pct"] = round(r["unique"] * 100 / top, 2)
        r["compressed_pct"] = round(r["compressed"] * 100 / top, 2)
    return rows, top


@login_required
@require_GET
@vary_on_headers("HX-Request")
def disk(request: HttpRequest) -> HttpResponse:
    du = services.disk_usage_from_db()
    rows = summary(du)
    chart, _top = _chart(du)
    holders = services.prune_preview(images="all", containers=True, volumes=True)
    dangling = services.prune_preview(images="dangling", containers=False, volumes=False)
    context = {
        "page": "disk",
        "rows": rows,
        "chart": chart,
        "du": du,
        "dangling": dangling,
        "holders": holders,
        "measured": VolumeUsage.objects.order_by("-measured_at").first(),
        "recent": PruneOperation.objects.all()[:5],
    }
    template = "disk/disk.html"
    if request.htmx:
        template += "#df_table"
    return render(request, template, context)


@login_required
@role_required(ADMIN)
@require_http_methods(["GET", "POST"])
def prune(request: HttpRequest) -> HttpResponse:
    """GET: exactly what a prune with these options would remove, and a confirm button.
    POST: queue that list (recomputed from the same options and checked against the IDs
    the person saw: if the list changed meanwhile, show the new preview instead)."""
    options = _options(request.POST if request.method == "POST" else request.GET)
    preview = services.prune_preview(**options)
    if request.method == "POST":
        seen = request.POST.get("seen", "")
        if seen == _fingerprint(preview):
            op = services.start_prune(preview, user=request.user)
            audit(request, "disk.prune", "", **options, operation=op.pk)
            if request.htmx:
                return jobs_views.inline(
                    request,
                    op,
                    poll_url=reverse("disk:prune_result", kwargs={"pk": op.pk}),
                    parts="disk/prune_operation.html",
                    status_id="prune-result",
                    poll="1s",
                )
            return redirect("disk:prune_result", pk=op.pk)
        changed = True
        if request.htmx:
            # in place: say so, and offer the new preview (the page's own URL, as a GET)
            return render(
                request,
                "disk/prune.html#changed",
                {"options": options, "preview_url": request.get_full_path()},
            )
    else:
        changed = False
    return render(
        request,
        "disk/prune.html",
        {
            "page": "disk",
            "preview": preview,
            "options": options,
            "fingerprint": _fingerprint(preview),
            "changed": changed,
        },
    )


def _fingerprint(preview: dict) -> str:
    """The items of a preview, so a confirmation applies only to what the person saw."""
    items = {k: preview[k] for k in ("containers", "volumes", "images", "layers")}
    return hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()


@login_required
@role_required(OPERATOR)
@require_POST
def measure(request: HttpRequest) -> HttpResponse:
    transaction.on_commit(tasks.measure_volumes.delay)
    audit(request, "disk.measure")
    return redirect("disk:disk")
