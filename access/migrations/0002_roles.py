"""The groups "viewer", "operator" and "admin" with their permissions (see access/roles.py).

Permissions are normally created after all migrations run (post_migrate), so the ones the
groups need are created here with get_or_create; post_migrate then finds them in place.
"""

from django.db import migrations

# group -> (app_label, model, codename) it carries
GRANTS = {
    "viewer": [],
    "operator": [("access", "auditevent", "operate")],
    "admin": [
        ("access", "auditevent", "operate"),
        ("access", "auditevent", "administer"),
        ("access", "auditevent", "view_auditevent"),
        # managing users and their roles in Django's admin
        *[
            ("auth", model, f"{verb}_{model}")
            for model in ("user", "group")
            for verb in ("add", "change", "delete", "view")
        ],
    ],
}
NAMES = {
    "operate": "Can pull, run, control and exec into containers, and tag",
    "administer": "Can remove and prune, manage registry credentials and users",
}


def create_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    for group_name, grants in GRANTS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        for app_label, model, codename in grants:
            ct, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
            verb, _, noun = codename.partition("_")
            default = f"Can {verb} {noun or model}".replace("auditevent", "audit event")
            perm, _ = Permission.objects.get_or_create(
                content_type=ct,
                codename=codename,
                defaults={"name": NAMES.get(codename, default)},
            )
            group.permissions.add(perm)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(GRANTS)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("access", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
