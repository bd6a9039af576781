"""Image pages. Views parse input, call a service in images/services.py, and render.

Each page is one template with named partials; an htmx request gets only the partial it
refreshes (``template += "#partial"``), so the page and its live parts render from the same
markup and everything also works without JavaScript.
"""

from __future__ import annotations

import hashlib
import secrets

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils.cache import get_conditional_response, patch_cache_control
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from access import masking
from access.audit import audit
from access.roles import ADMIN, OPERATOR, role_of, role_required
from dockweb.confirm import ask_first, needs_confirmation
from dockweb.jobs import views as jobs_views
from dockweb.runtime.errors import DockwebError, InvalidArgument, InvalidReference, NotFound
from images import credentials, services
from images.context_processors import NAV_PULLS
from images.kept import Kept
from images.models import Build, Image, Operation, Pull, PullLayer, RegistryCredential
from images.templatetags.dockweb_extras import duration, rate, since

# The platforms offered on the Pull page; "" is the host's own platform, as `docker pull`.
PLATFORMS = [
    "linux/amd64",
    "linux/arm64",
    "linux/arm/v7",
    "linux/arm/v6",
    "linux/386",
    "linux/ppc64le",
    "linux/s390x",
    "linux/riscv64",
]

RECENT_PULLS = 15
IMAGES_PER_PAGE = 100


def _flag(request: HttpRequest, name: str) -> bool:
    return request.GET.get(name, "") not in ("", "0", "false", "off")


def _etag(request: HttpRequest, *shown) -> str:
    """A strong ETag over ``shown`` (what the response displays) and what else shapes it:
    the user and role, the language, page or fragment, and the CSRF secret (a page kept by
    a 304 must still carry a token valid for this session)."""
    user = request.user
    parts = (
        shown,
        user.pk,
        user.get_username(),
        role_of(user),
        get_language(),
        bool(request.htmx),
        request.META.get("CSRF_COOKIE", ""),
    )
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()
    return f'"{digest}"'


def _not_modified(request: HttpRequest, etag: str) -> HttpResponse | None:
    """304 (no body, nothing rendered) when the client already holds ``etag``."""
    response = get_conditional_response(request, etag=etag)
    if response is not None:
        _revalidate(response, etag)
    return response


def _revalidate(response: HttpResponse, etag: str) -> HttpResponse:
    # private, and checked with the server every time (a 304 costs no render)
    response["ETag"] = etag
    patch_cache_control(response, private=True, no_cache=True)
    return response


def _get_image_or_404(key: str):
    try:
        return services.get_image(key)
    except (NotFound, InvalidArgument):
        raise Http404(_("No such image: %(key)s") % {"key": key}) from None


# --- images ------------------------------------------------------------------------------


@login_required
@require_GET
@vary_on_headers("HX-Request")
def image_list(request: HttpRequest) -> HttpResponse:
    """The Images page, with `docker image ls`'s toggles as GET parameters.

    With HX-Request, only the table (the `image_list` partial) is rendered.
    """
    options = {
        "all": _flag(request, "all"),
        "digests": _flag(request, "digests"),
        "no_trunc": _flag(request, "no_trunc"),
        "dangling": True if _flag(request, "dangling") else None,
        "reference": request.GET.get("reference", "").strip(),
    }
    rows: list[dict] = []
    totals: dict = {}
    error = None
    try:
        rows, totals = services.image_table(**options)
    except DockwebError as e:
        error = str(e)
    # A page of rows at a time: totals cover every image, and a thousand-image store
    # still renders in a few tens of milliseconds. The rows are image_table's cached ones:
    # the page gets copies.
    page = Paginator(rows, IMAGES_PER_PAGE).get_page(request.GET.get("page"))
    signature, prepared = _page_rows(rows, page)
    page.object_list = [dict(row) for row in prepared]
    for row in page.object_list:
        if row["created"]:
            row["created_since"] = since(row["created"])
    query = request.GET.copy()
    query.pop("page", None)
    template = "images/images.html"
    context: dict = {
        "rows": page.object_list,
        "page_obj": page,
        "query": query.urlencode(),
        "totals": totals,
        "error": error,
        "options": options,
        "filtered": any(options.values()),
        "page": "images",
    }
    nav: tuple = ()
    if not request.htmx:
        # the navigation's active pulls, read here once for both the ETag and the page
        active = list(services.active_pulls())
        context["active_pulls"] = active[:NAV_PULLS]
        context["active_pull_count"] = len(active)
        nav = (len(active), [(p.pk, p.reference, p.normalized, p.percent) for p in active])
    shown = (
        signature,
        tuple(row.get("created_since") for row in page.object_list),
        page.paginator.count,
        context["query"],
        totals,
        error,
        nav,
    )
    # a page with messages waiting shows them (and uses them up): always rendered
    if len(messages.get_messages(request)):
        context["image_list_html"] = _image_list_html(request, rows, context)
        return render(request, template, context)
    etag = _etag(request, *shown)
    if response := _not_modified(request, etag):
        return response
    if request.htmx:
        html = _image_list_html(request, rows, context)
    else:
        # The whole page, kept per process for what it shows and whom it shows it to, with
        # the CSRF token (each request's own) put in afterwards.
        user = request.user
        key = (
            repr(shown),
            user.pk,
            user.get_username(),
            role_of(user),
            get_language(),
            request.get_full_path(),
        )

        def page_context() -> dict:
            context["image_list_html"] = _image_list_html(request, rows, context)
            return context

        html = _render_kept(_pages, key, request, template, page_context)
    return _revalidate(HttpResponse(html), etag)


# Whole Images pages of this process, by what they show and to whom (see image_list).
_pages = Kept(64)


def _render_kept(kept: Kept, key, request: HttpRequest, template: str, make_context) -> str:
    """``template`` rendered with ``make_context()`` once per ``key`` (which must cover all
    it shows and to whom), kept without a CSRF token; each answer gets the request's own.

    The token's place is marked by a random slot drawn for this one rendering (128 bits,
    never sent anywhere), and the kept page is the text around it: untrusted text in the
    page (a registry's error message, a reference) cannot contain the slot, so it can never
    be turned into the viewer's token."""
    parts = kept.get(key)
    if parts is None:
        slot = "csrf-slot-" + secrets.token_hex(16)
        context = {**make_context(), "csrf_token": slot}
        parts = kept.keep(key, tuple(render_to_string(template, context, request).split(slot)))
    return get_token(request).join(parts) if len(parts) > 1 else parts[0]


# A page of image_table's rows, ready to show but for the "created ... ago" words, and a
# digest of it: (rows, digest, prepared) by (id(rows), page number); the rows are kept so
# that their id is not reused while the entry lives.
_prepared_pages = Kept(64)


def _page_rows(rows: list[dict], page) -> tuple[str, list[dict]]:
    key = (id(rows), page.number)
    hit = _prepared_pages.get(key)
    if hit is not None and hit[0] is rows:
        return hit[1], hit[2]
    digest = hashlib.blake2b(repr(page.object_list).encode(), digest_size=16).hexdigest()
    detail_prefix = reverse("images:detail", args=["0"])[:-2]
    prepared = [dict(row) for row in page.object_list]
    for row in prepared:
        row["detail_url"] = f"{detail_prefix}{row['image_id'].split(':', 1)[-1]}/"
        if row["created"]:
            row["created_iso"] = row["created"].isoformat()
            row["created_title"] = row["created"].strftime("%Y-%m-%d %H:%M:%S UTC")
    _prepared_pages.keep(key, (rows, digest, prepared))
    return digest, prepared


# Rendered image_list partials of this process: (rows, html) by what the partial shows.
_image_lists = Kept(64)


def _image_list_html(request: HttpRequest, rows: list[dict], context: dict) -> str:
    """The `image_list` partial, rendered once per table, page, language, role and set of
    "created ... ago" words.

    ``rows`` are image_table's cached list: the same object means the same database
    generation and options, and it is kept with the HTML so that its id is not reused.
    """
    if context["error"] is not None:
        return render_to_string("images/images.html#image_list", context, request)
    page = context["page_obj"]
    key = (
        id(rows),
        page.number,
        context["query"],
        get_language(),
        role_of(request.user),
        tuple(row.get("created_since") for row in page.object_list),
    )
    hit = _image_lists.get(key)
    if hit is not None and hit[0] is rows:
        return hit[1]
    html = render_to_string("images/images.html#image_list", context, request)
    _image_lists.keep(key, (rows, html))
    return html


@login_required
@require_GET
def image_detail(request: HttpRequest, key: str) -> HttpResponse:
    """One image, by full ID or ID prefix: references, layers, config, history, actions."""
    image = _get_image_or_404(key)
    detail = services.image_detail(image)
    if not masking.shows_secrets(request.user):
        detail = masking.image_detail(detail)
    context = {"image": image, "detail": detail, "page": "images"}
    context["explorer"] = services.layer_explorer(image)
    return render(request, "images/image_detail.html", context)


def _page_number(request: HttpRequest) -> int:
    try:
        return int(request.GET.get("page", "1"))
    except ValueError:
        return 1


@login_required
@require_GET
@vary_on_headers("HX-Request")
def image_layer(request: HttpRequest, key: str, position: int) -> HttpResponse:
    """One layer's added, changed and deleted files, from the stored analysis.

    ``?q=`` filters paths, ``?change=added|changed|deleted`` the kind, ``?page=`` pages.
    With HX-Request, only the file list (the `layer_files` partial) is rendered: the image
    page loads it into a layer's row.
    """
    image = _get_image_or_404(key)
    changes = services.layer_changes(
        image,
        position,
        query=request.GET.get("q", ""),
        change=request.GET.get("change", ""),
        page=_page_number(request),
    )
    if changes is None:
        raise Http404(_("No analysis of layer %(n)d of this image.") % {"n": position + 1})
    template = "images/image_layer.html"
    if request.htmx:
        template += "#layer_files"
    context = {"image": image, "changes": changes, "page": "images"}
    return render(request, template, context)


@login_required
@require_GET
@vary_on_headers("HX-Request")
def image_files(request: HttpRequest, key: str) -> HttpResponse:
    """The image's final file tree, one directory at a time (``?path=/usr/bin``).

    Each entry says which layer it comes from. ``?q=`` filters names, ``?page=`` pages;
    with HX-Request only the listing (the `file_list` partial) is rendered.
    """
    image = _get_image_or_404(key)
    listing = services.directory_listing(
        image,
        request.GET.get("path", "/"),
        query=request.GET.get("q", ""),
        page=_page_number(request),
    )
    if listing is None:
        raise Http404(_("No such directory in the analysis of this image."))
    template = "images/image_files.html"
    if request.htmx:
        template += "#file_list"
    context = {"image": image, "listing": listing, "page": "images"}
    return render(request, template, context)


@login_required
@role_required(OPERATOR)
@require_POST
def image_tag(request: HttpRequest, key: str) -> HttpResponse:
    """`docker tag <image> <target>`, run by the worker; shows the operation."""
    image = _get_image_or_404(key)
    target = request.POST.get("target", "").strip()
    if not target:
        messages.error(request, _("Enter the new tag, such as myapp:1.0."))
        return redirect("images:detail", key=key)
    try:
        op = services.start_tag(
            image.image_id, target, user=request.user, source_name=image_name(image.image_id)
        )
    except DockwebError as e:
        messages.error(
            request, _("Cannot tag as %(target)s: %(error)s") % {"target": target, "error": e}
        )
        return redirect("images:detail", key=key)
    audit(request, "image.tag", image.image_id, target=target, operation=op.pk)
    return _operation_started(request, op)


@login_required
@role_required(ADMIN)
@require_POST
def image_remove(request: HttpRequest) -> HttpResponse:
    """`docker rmi [--force] <reference or ID>`, run by the worker; shows the operation.

    Removing a reference untags it; the image itself goes only with its last reference (or
    with force), as Docker does.
    """
    target = request.POST.get("target", "").strip()
    if not target:
        raise Http404(_("Nothing to remove."))
    force = request.POST.get("force") == "1"
    image = request.POST.get("image", "")
    if needs_confirmation(request):
        named = image_name(target)
        by_id = named != target  # an image ID, named here by its tag or short ID
        return ask_first(
            request,
            question=_("Remove this image?") if by_id else _("Remove this tag?"),
            target=named,
            detail=_("Forced: also while other references or stopped containers use it.")
            if force
            else "",
            action_label=_("Remove image") if by_id else _("Remove tag"),
            cancel_url=_detail_url(image),
            page="images",
        )
    try:
        op = services.start_removal(target, force=force, user=request.user)
    except DockwebError as e:
        messages.error(
            request, _("Cannot remove %(target)s: %(error)s") % {"target": target, "error": e}
        )
        # back to the image's page when ``image`` names one a URL can hold
        return redirect(_detail_url(image))
    audit(request, "image.remove", target, force=force, operation=op.pk)
    return _operation_started(request, op)


def _detail_url(image: str) -> str:
    """The image's page when ``image`` names one a URL can hold, else the list."""
    try:
        return reverse("images:detail", kwargs={"key": image}) if image else reverse("images:list")
    except NoReverseMatch:
        return reverse("images:list")


def _operation_started(request: HttpRequest, op: Operation) -> HttpResponse:
    """The queued removal or tag: in place for an htmx form, else its page."""
    if request.htmx:
        return jobs_views.inline(
            request,
            op,
            poll_url=reverse("images:operation", kwargs={"pk": op.pk}),
            parts="images/operation.html",
            context=operation_context,
        )
    return redirect("images:operation", pk=op.pk)


def image_name(ref_or_id: str) -> str:
    """What a person calls an image: a reference as given, an ID as its first tag
    (repo:tag) or, with none, its 12-character short ID; never a bare 64-hex ID."""
    hex_part = ref_or_id.removeprefix("sha256:")
    if len(hex_part) != 64 or any(c not in "0123456789abcdef" for c in hex_part):
        return ref_or_id
    image = Image.objects.filter(image_id=f"sha256:{hex_part}").first()
    if image is not None:
        tagged = [r.familiar for r in image.references.exclude(tag="").select_related("repository")]
        if tagged:
            return sorted(tagged)[0]
    return hex_part[:12]


# --- operations --------------------------------------------------------------------------


def removal_target(op: Operation) -> str:
    """The reference or ID a removal was asked for, to offer the same removal forced."""
    args = op.args or {}
    return str(args.get("ref", ""))


def operation_context(op: Operation) -> dict:
    """What a removal did and what to force, for the job page (dockweb.jobs.views)."""
    target = removal_target(op)
    return {
        "summary": services.untag_summary(op) if op.kind == Operation.Kind.REMOVE else "",
        "target": target,
        "target_name": image_name(target) if target else "",
        "source_name": (op.args or {}).get("source_name")
        or image_name(str((op.args or {}).get("source", ""))),
        "page": "images",
    }


# --- pulls -------------------------------------------------------------------------------


@login_required
@role_required(OPERATOR)
@require_http_methods(["GET", "POST"])
def pull(request: HttpRequest) -> HttpResponse:
    """The Pull page; POST queues the pull and goes to its live page."""
    reference = request.POST.get("reference", "").strip()
    platform = request.POST.get("platform", "")
    error = None
    if request.method == "POST":
        if not reference:
            error = _("Enter an image reference, such as busybox:latest.")
        elif platform and platform not in PLATFORMS:
            error = _("Choose a platform from the list.")
        else:
            try:
                started = services.start_pull(reference, platform=platform, user=request.user)
            except (DockwebError, ValueError) as e:
                error = str(e)
            else:
                audit(request, "image.pull", reference, platform=platform, pull=started.pk)
                return redirect("images:pull_detail", pk=started.pk)
    context = {
        "reference": reference,
        "platform": platform,
        "platforms": PLATFORMS,
        "error": error,
        "pulls": Pull.objects.all()[:RECENT_PULLS],
        "page": "pull",
    }
    return render(request, "images/pull.html", context, status=400 if error else 200)


@login_required
@require_GET
def pull_normalize(request: HttpRequest) -> HttpResponse:
    """What a reference means, as typed: the `normalized` partial of the Pull page."""
    reference = request.GET.get("reference", "").strip()
    normalized = invalid = ""
    if reference:
        try:
            normalized = services.normalize_reference(reference)
        except InvalidReference as e:
            invalid = str(e)
    context = {"reference": reference, "normalized": normalized, "invalid": invalid}
    return render(request, "images/pull.html#normalized", context)


@login_required
@require_GET
@vary_on_headers("HX-Request")
def pull_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A pull's live progress; the `pull_progress` partial polls itself while active."""
    if request.htmx:
        return _pull_progress(request, pk)
    p = get_object_or_404(Pull, pk=pk)
    context = {"pull": p, "layers": list(p.layers.all()), "page": "pull"}
    return render(request, "images/pull_detail.html", context)


# Rendered progress fragments, per process: everyone watching a pull sees the same fragment
# (for a language and a role) until the worker writes progress again, every 0.2 s at most,
# while hundreds of polls a second may ask for it. Kept without their CSRF token, which is
# each request's own; bounded (cleared when full: entries are worth 0.2 s).
_fragments = Kept(256)


def _pull_progress(request: HttpRequest, pk: int) -> HttpResponse:
    # Plain SELECTs (one row and a few): this is the hottest view, and the ORM spent more
    # compiling these two queries than the database answering them.
    p = next(
        iter(Pull.objects.raw(f"SELECT * FROM {Pull._meta.db_table} WHERE id = %s", [pk])), None
    )
    if p is None:
        raise Http404
    layers = list(
        PullLayer.objects.raw(
            f"SELECT * FROM {PullLayer._meta.db_table} WHERE pull_id = %s ORDER BY position",
            [pk],
        )
    )
    # The fragment answers 304 (nothing rendered) while nothing it shows has changed; speed
    # and time left move with the clock, so they are part of what it shows.
    shown = (
        p.pk,
        p.updated_at,
        p.status,
        p.cancel_requested,
        p.error,
        p.image_id,
        max((la.updated_at for la in layers), default=None),
        tuple((la.pk, la.status, la.current, la.total) for la in layers),
        rate(p.speed) if p.is_active else "",
        duration(p.eta),
        p.poll_ms,
    )
    etag = _etag(request, *shown)
    if response := _not_modified(request, etag):
        return response
    key = (shown, get_language(), role_of(request.user))
    html = _render_kept(
        _fragments,
        key,
        request,
        "images/pull_detail.html#pull_progress",
        lambda: {"pull": p, "layers": layers, "page": "pull"},
    )
    return _revalidate(HttpResponse(html), etag)


@login_required
@role_required(OPERATOR)
@require_POST
def pull_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    p = get_object_or_404(Pull, pk=pk)
    services.cancel_pull(p)
    audit(request, "image.pull_cancel", p.reference, pull=p.pk)
    return redirect("images:pull_detail", pk=p.pk)


@login_required
@require_GET
def active_pulls(request: HttpRequest) -> HttpResponse:
    """The navigation's active pulls, which poll themselves only while there are some."""
    return render(request, "base.html#nav_pulls")


# --- builds ------------------------------------------------------------------------------

RECENT_BUILDS = 15

BUSYBOX_EXAMPLE = """FROM busybox:latest
ARG GREETING=hello
RUN echo "$GREETING from a dockweb build" > /greeting.txt
COPY . /app/
WORKDIR /app
CMD ["cat", "/greeting.txt"]"""


def _build_args(text: str) -> dict[str, str]:
    """``KEY=value`` lines (as ``--build-arg``), blank lines ignored; ValueError says which
    line is wrong."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        key, eq, value = line.partition("=")
        if not eq or not key.strip() or " " in key.strip():
            raise ValueError(
                _("Write each build argument as KEY=value, not %(line)s.") % {"line": line}
            )
        out[key.strip()] = value
    return out


@login_required
@role_required(OPERATOR)
@require_http_methods(["GET", "POST"])
def build(request: HttpRequest) -> HttpResponse:
    """The Build page; POST saves the context, queues the build and goes to its live page."""
    form = {
        "dockerfile": request.POST.get("dockerfile", ""),
        "tags": request.POST.get("tags", "").strip(),
        "build_args": request.POST.get("build_args", ""),
        "no_cache": request.POST.get("no_cache", "") not in ("", "0", "off"),
    }
    error = None
    if request.method == "POST":
        try:
            started = services.start_build(
                form["dockerfile"],
                archive=request.FILES.get("context"),
                files=request.FILES.getlist("files"),
                tags=form["tags"].replace(",", " ").split(),
                no_cache=form["no_cache"],
                build_args=_build_args(form["build_args"]),
                user=request.user,
            )
        except (DockwebError, ValueError) as e:
            error = str(e)
        else:
            audit(request, "image.build", " ".join(started.tags), build=started.pk)
            return redirect("images:build_detail", pk=started.pk)
    context = {
        "form": form,
        "example": BUSYBOX_EXAMPLE,
        "error": error,
        "builds": Build.objects.all()[:RECENT_BUILDS],
        "page": "build",
    }
    return render(request, "images/build.html", context, status=400 if error else 200)


def _mask_build(b: Build, steps: list) -> None:
    """A build as a viewer reads it (in memory, never saved): build-argument values and
    ARG/ENV values masked in the Dockerfile, the steps and the output, and no host paths."""
    secrets = [str(v) for v in (b.build_args or {}).values()]

    def hide(text: str) -> str:
        return masking.paths(masking.values(text, secrets))

    b.dockerfile = hide(masking.dockerfile(b.dockerfile))
    b.build_args = {k: masking.MASK for k in b.build_args or {}}
    b.output = [hide(_mask_step_line(line)) for line in b.output or []]
    b.error = hide(b.error or "")
    for step in steps:
        step.instruction = hide(masking.instruction(step.instruction))


def _mask_step_line(line: str) -> str:
    """``Step 2/4 : ARG TOKEN=abc`` → ``Step 2/4 : ARG TOKEN=••••``."""
    head, sep, instruction = line.partition(" : ")
    if sep and head.startswith("Step "):
        return head + sep + masking.instruction(instruction)
    return line


@login_required
@require_GET
@vary_on_headers("HX-Request")
def build_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A build's steps and output; the `build_progress` partial polls itself while active."""
    b = get_object_or_404(Build, pk=pk)
    template = "images/build_detail.html"
    if request.htmx:
        template += "#build_progress"
    steps = list(b.steps.all())
    if not masking.shows_secrets(request.user):
        _mask_build(b, steps)
    stages = services.mark_stages(steps)
    context = {"build": b, "steps": steps, "stages": stages, "page": "build"}
    return render(request, template, context)


# --- registries --------------------------------------------------------------------------


@login_required
@role_required(ADMIN)
@require_http_methods(["GET", "POST"])
def registries(request: HttpRequest) -> HttpResponse:
    """Registry credentials: list, add or replace. Secrets are never shown."""
    form = {"registry": "", "username": ""}
    error = None
    if request.method == "POST":
        form = {
            "registry": request.POST.get("registry", "").strip(),
            "username": request.POST.get("username", "").strip(),
        }
        password = request.POST.get("password", "")
        if not (form["registry"] and form["username"] and password):
            error = _("Enter the registry, a username and a password or token.")
        else:
            try:
                saved = credentials.save_credential(form["registry"], form["username"], password)
            except ValueError as e:
                error = _("Cannot save the credentials for %(registry)s: %(error)s") % {
                    "registry": form["registry"],
                    "error": e,
                }
            else:
                audit(request, "registry.save", saved.registry, username=saved.username)
                messages.success(
                    request,
                    _("Saved the credentials for %(registry)s.") % {"registry": saved.registry},
                )
                return redirect("images:registries")
    context = {
        "credentials": RegistryCredential.objects.all(),
        "form": form,
        "error": error,
        "page": "registries",
    }
    return render(request, "images/registries.html", context, status=400 if error else 200)


@login_required
@role_required(ADMIN)
@require_POST
def registry_delete(request: HttpRequest) -> HttpResponse:
    registry = request.POST.get("registry", "")
    try:
        credentials.delete_credential(registry)
    except ValueError as e:
        messages.error(request, str(e))
    else:
        audit(request, "registry.delete", registry)
        messages.success(
            request, _("Removed the credentials for %(registry)s.") % {"registry": registry}
        )
    return redirect("images:registries")
