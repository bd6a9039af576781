"""``manage.py createuser NAME --role viewer|operator|admin [--password-file F | --no-password]``

For scripts: creates the user, or changes the role of an existing one (idempotent). Without
a password option the password is asked for on the terminal.
"""

from __future__ import annotations

import getpass

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from access.audit import audit, cli_actor
from access.roles import ROLES, set_role


class Command(BaseCommand):
    help = "Create a dashboard user with a role, or change an existing user's role."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", choices=ROLES, required=True)
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--password-file", help="read the password from this file")
        group.add_argument(
            "--no-password", action="store_true", help="an unusable password (set it later)"
        )

    def handle(self, *args, username: str, role: str, **options) -> None:
        User = get_user_model()
        user, created = User.objects.get_or_create(username=username)
        password = None
        if options["password_file"]:
            try:
                with open(options["password_file"]) as f:
                    password = f.read().strip()
            except OSError as e:
                raise CommandError(f"read password: {e}") from None
        elif created and not options["no_password"]:
            password = getpass.getpass(f"Password for {username}: ")
        if password is not None:
            try:
                validate_password(password, user)
            except ValidationError as e:
                if created:
                    user.delete()
                raise CommandError("password: " + " ".join(e.messages)) from None
            user.set_password(password)
        elif created:
            user.set_unusable_password()
        user.save()
        set_role(user, role)
        audit(cli_actor(), "user.create" if created else "user.role", username, role=role)
        verb = "Created" if created else "Updated"
        self.stdout.write(f"{verb} {username} ({role})")
