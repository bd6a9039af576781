"""Roles: viewer (reads), operator (pulls, runs and controls containers, tags, consoles),
admin (removes, prunes, registry credentials, users).

A role is a Django group carrying the permissions ``access.operate`` / ``access.administer``
(migration 0002); a signed-in user with neither is a viewer, and superusers are admins.
Every state-changing view goes through ``role_required``; templates read ``can.operate`` and
``can.admin`` from the ``roles`` context processor to hide what the user may not do.
"""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.models import Group
from django.http import HttpRequest, JsonResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)
# the permission each role needs; a viewer needs only to be signed in
PERMISSION = {OPERATOR: "access.operate", ADMIN: "access.administer"}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def has_role(user, role: str) -> bool:
    """Whether ``user`` may act as ``role``; higher roles include the lower ones."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if role == VIEWER:
        return True
    granted = role_permissions(user)
    if role == OPERATOR and PERMISSION[ADMIN] in granted:
        return True
    return PERMISSION[role] in granted


def role_permissions(user) -> frozenset[str]:
    """The role permissions (``PERMISSION``'s values) an active ``user`` holds, directly or
    through groups; all of them for a superuser.

    One query, kept on the user instance as ``has_perm`` keeps its own caches: a request's
    user is loaded per request, so a role changed by an admin applies from the next request.
    (``has_perm`` costs two queries, user and group permissions, on first use.)
    """
    cached = user.__dict__.get("_role_perm_cache")
    if cached is not None:
        return cached
    if user.is_superuser:
        granted = frozenset(PERMISSION.values())
    else:
        granted = frozenset(f"access.{codename}" for codename in _role_codenames(user.pk))
    user.__dict__["_role_perm_cache"] = granted
    return granted


def _role_codenames(user_id) -> list[str]:
    """The role permissions' codenames granted to ``user_id`` directly or through a group.

    Plain SQL: this runs on every request (progress polls included), and the ORM spent
    more compiling the query than the database spent answering it.
    """
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection

    User = get_user_model()  # noqa: N806

    qn = connection.ops.quote_name
    perm, ct = qn(Permission._meta.db_table), qn(ContentType._meta.db_table)
    user_perms = qn(User.user_permissions.through._meta.db_table)
    user_groups = qn(User.groups.through._meta.db_table)
    group_perms = qn(Group.permissions.through._meta.db_table)
    codenames = sorted(p.split(".", 1)[1] for p in PERMISSION.values())
    sql = (
        f"SELECT DISTINCT p.codename FROM {perm} p JOIN {ct} ct ON ct.id = p.content_type_id"
        f" WHERE ct.app_label = %s AND p.codename IN ({', '.join(['%s'] * len(codenames))})"
        f" AND (p.id IN (SELECT permission_id FROM {user_perms} WHERE user_id = %s)"
        f" OR p.id IN (SELECT gp.permission_id FROM {group_perms} gp"
        f" JOIN {user_groups} ug ON ug.group_id = gp.group_id WHERE ug.user_id = %s))"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, ["access", *codenames, user_id, user_id])
        return [row[0] for row in cursor.fetchall()]


def role_of(user) -> str:
    """The highest role ``user`` has ("" for anonymous visitors)."""
    for role in (ADMIN, OPERATOR, VIEWER):
        if has_role(user, role):
            return role
    return ""


def set_role(user, role: str) -> None:
    """Make ``user`` exactly ``role``: one role group, and admin staff (for Django's admin).

    Idempotent. Superusers stay superusers (and so admins) whatever the group.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    from django.db import transaction

    ensure_groups()
    # one transaction: what listens to role changes (access/signals.py) sees the end state
    with transaction.atomic():
        user.groups.remove(*Group.objects.filter(name__in=ROLES).exclude(name=role))
        user.groups.add(Group.objects.get(name=role))
        user.is_staff = role == ADMIN or user.is_superuser
        user.save(update_fields=["is_staff"])
    # has_perm caches permissions on the instance
    for cache in ("_perm_cache", "_user_perm_cache", "_group_perm_cache", "_role_perm_cache"):
        user.__dict__.pop(cache, None)


# group -> the permissions it carries ("app_label.codename"); migration 0002 creates the same
GRANTS = {
    VIEWER: [],
    OPERATOR: ["access.operate"],
    ADMIN: [
        "access.operate",
        "access.administer",
        "access.view_auditevent",
        *[
            f"auth.{verb}_{model}"
            for model in ("user", "group")
            for verb in ("add", "change", "delete", "view")
        ],
    ],
}


def ensure_groups() -> None:
    """Create the role groups with their permissions if they are missing (a flushed test
    database, a restored dump). Idempotent; cheap when they exist."""
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType

    if Group.objects.filter(name__in=ROLES).count() == len(ROLES):
        return
    for name, perms in GRANTS.items():
        group, _created = Group.objects.get_or_create(name=name)
        for perm in perms:
            app_label, codename = perm.split(".")
            model = "auditevent" if app_label == "access" else codename.split("_", 1)[1]
            ct = ContentType.objects.get_or_create(app_label=app_label, model=model)[0]
            permission, _created = Permission.objects.get_or_create(
                content_type=ct, codename=codename, defaults={"name": codename}
            )
            group.permissions.add(permission)


def role_required(role: str):
    """Refuse unsafe methods (POST...) from users below ``role`` with a 403 that says why.

    GET and HEAD pass (pages stay readable by viewers; a POST-only view still answers 405
    through its own ``require_POST``). The wrapped view carries ``required_role``, which the
    tests use to find every state-changing endpoint.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")

    def decorator(view):
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs):
            if request.method not in SAFE_METHODS and not has_role(request.user, role):
                return forbidden(request, role)
            return view(request, *args, **kwargs)

        wrapped.required_role = role
        return wrapped

    return decorator


def forbidden(request: HttpRequest, role: str):
    current = role_of(request.user) or _("anonymous")
    message = _(
        "Permission denied: this needs the %(role)s role and you are %(current)s. "
        "Ask an admin to change your role."
    ) % {"role": role, "current": current}
    match = request.resolver_match
    if request.path.startswith("/api/") or (match and match.namespace == "api"):
        return JsonResponse({"error": message, "required_role": role}, status=403)
    return TemplateResponse(
        request, "access/403.html", {"message": message, "required_role": role}, status=403
    )


class Can:
    """``can.operate`` / ``can.admin`` in templates, computed once per request."""

    def __init__(self, user) -> None:
        self._user = user
        self._cache: dict[str, bool] = {}

    def _has(self, role: str) -> bool:
        if role not in self._cache:
            self._cache[role] = has_role(self._user, role)
        return self._cache[role]

    @property
    def operate(self) -> bool:
        return self._has(OPERATOR)

    @property
    def admin(self) -> bool:
        return self._has(ADMIN)

    @property
    def role(self) -> str:
        return role_of(self._user)


def context(request: HttpRequest) -> dict:
    """Context processor: ``can`` (see Can)."""
    return {"can": Can(getattr(request, "user", None))}
