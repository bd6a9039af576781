"""The session and the user of a request, each loaded by one plain query.

Every request loads both, progress polls included (hundreds a second with many watchers);
the ORM spent more time compiling these two lookups than the database spent answering
them. Same rows, same checks (expiry, ``is_active``, the session's password hash, which
``django.contrib.auth.get_user`` verifies after ``get_user``), so a session logged out,
expired or from before a password change stops working at once, in every server process.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.sessions.backends import db
from django.db import connections, router
from django.utils import timezone


class SessionStore(db.SessionStore):
    """Django's database sessions (``SESSION_ENGINE = "access.fastload"``), read with
    one plain SELECT; writes, expiry and clearing are Django's own."""

    def load(self):
        key = self.session_key
        if not key:
            return {}
        model = self.model
        connection = connections[router.db_for_read(model)]
        qn = connection.ops.quote_name
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {qn('session_data')} FROM {qn(model._meta.db_table)}"
                f" WHERE {qn('session_key')} = %s AND {qn('expire_date')} > %s",
                [key, now],
            )
            row = cursor.fetchone()
        if row is None:
            self._session_key = None  # as Django: a new key if this session is saved
            return {}
        return self.decode(row[0])


class Backend(ModelBackend):
    """Django's ModelBackend; the user of a session is read with one plain SELECT."""

    def get_user(self, user_id):
        model = get_user_model()
        try:
            pk = model._meta.pk.to_python(user_id)
        except Exception:  # a session naming no valid id: nobody, as ModelBackend
            return None
        connection = connections[router.db_for_read(model)]
        qn = connection.ops.quote_name
        rows = list(
            model._default_manager.raw(
                f"SELECT * FROM {qn(model._meta.db_table)} WHERE {qn(model._meta.pk.column)} = %s",
                [pk],
            )
        )
        user = rows[0] if rows else None
        return user if user is not None and self.user_can_authenticate(user) else None
