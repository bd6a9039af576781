"""Admin: the audit log read-only, and each user's role in the user list."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from access.models import AuditEvent
from access.roles import role_of


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows nobody adds, changes or deletes through the admin: look, don't touch."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """The log is evidence: read-only."""

    list_display = ["at", "actor", "action", "target", "remote_addr"]
    list_filter = ["action", "actor"]
    search_fields = ["actor", "action", "target"]
    date_hierarchy = "at"


User = get_user_model()


class RoleUserAdmin(UserAdmin):
    """Django's user admin plus the role; a role is set by putting the user in one of the
    groups viewer, operator or admin (admins also need "staff status" to use this admin)."""

    list_display = [*UserAdmin.list_display, "role"]
    list_filter = [*UserAdmin.list_filter]

    @admin.display(description="role")
    def role(self, obj) -> str:
        return role_of(obj)


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, RoleUserAdmin)
