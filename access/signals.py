"""``role_changed``: sent, once the transaction commits, with the IDs of users whose role
may have changed — their groups, their or their groups' permissions, ``is_active`` or
``is_superuser`` changed, or the user is being deleted. Whatever a role grants for longer
than a request (an open console) listens to it and checks the role again
(containers/apps.py).

Wired in AccessConfig.ready: Django admin, ``manage.py createuser``, ``set_role`` and
scripts all change roles through the ORM, which sends these model signals.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models.signals import m2m_changed, post_save, pre_delete
from django.dispatch import Signal

role_changed = Signal()  # kwargs: user_ids (frozenset), deleted (True: being deleted)

# the users a reverse clear (group.user_set.clear()) is about, kept from pre_clear
_CLEARING = "_role_clearing_user_ids"


def announce(user_ids) -> None:
    """Send ``role_changed`` for ``user_ids`` after the current transaction commits (at
    once outside one): a role set by removing groups then adding one is judged once done."""
    ids = frozenset(pk for pk in user_ids if pk is not None)
    if ids:
        transaction.on_commit(lambda: role_changed.send(sender=Group, user_ids=ids))


def _group_users(group_ids) -> set:
    User = get_user_model()  # noqa: N806
    return set(User.objects.filter(groups__in=list(group_ids)).values_list("pk", flat=True))


def _user_links_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    """User.groups / User.user_permissions, from either side."""
    if not reverse:
        if action in ("post_add", "post_remove", "post_clear"):
            announce([instance.pk])
        return
    # instance is a Group or Permission; pk_set holds users
    if action == "pre_clear":
        # a Group's or a Permission's users
        instance.__dict__[_CLEARING] = set(instance.user_set.values_list("pk", flat=True))
    elif action == "post_clear":
        announce(instance.__dict__.pop(_CLEARING, set()))
    elif action in ("post_add", "post_remove"):
        announce(pk_set or ())


def _group_permissions_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    """Group.permissions: every user of the group(s) may have gained or lost a role."""
    if action == "pre_clear" and reverse:
        instance.__dict__[_CLEARING] = _group_users(instance.group_set.values_list("pk", flat=True))
        return
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if not reverse:
        announce(_group_users([instance.pk]))
    elif action == "post_clear":
        announce(instance.__dict__.pop(_CLEARING, set()))
    else:
        announce(_group_users(pk_set or ()))


def _user_saved(sender, instance, created, update_fields, **kwargs) -> None:
    # a sign-in saves last_login only: not a role change
    if created or (
        update_fields is not None and not {"is_active", "is_superuser"} & set(update_fields)
    ):
        return
    announce([instance.pk])


def _user_deleted(sender, instance, **kwargs) -> None:
    # sent now: the receivers must see the user's rows before they go with it
    role_changed.send(sender=Group, user_ids=frozenset([instance.pk]), deleted=True)


def connect() -> None:
    User = get_user_model()  # noqa: N806
    m2m_changed.connect(
        _user_links_changed, sender=User.groups.through, dispatch_uid="access.roles.user_groups"
    )
    m2m_changed.connect(
        _user_links_changed,
        sender=User.user_permissions.through,
        dispatch_uid="access.roles.user_permissions",
    )
    m2m_changed.connect(
        _group_permissions_changed,
        sender=Group.permissions.through,
        dispatch_uid="access.roles.group_permissions",
    )
    post_save.connect(_user_saved, sender=User, dispatch_uid="access.roles.user_saved")
    pre_delete.connect(_user_deleted, sender=User, dispatch_uid="access.roles.user_deleted")
