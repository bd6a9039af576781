"""The admin role may read and lift sign-in lockouts (django-axes' access attempts and
logs in Django's admin): deleting a user's or an address's access attempts lifts its lock."""

from django.db import migrations

GRANTS = [
    ("axes", "accessattempt", "view_accessattempt"),
    ("axes", "accessattempt", "delete_accessattempt"),
    ("axes", "accesslog", "view_accesslog"),
    ("axes", "accessfailurelog", "view_accessfailurelog"),
]


def grant(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    group, _ = Group.objects.get_or_create(name="admin")
    for app_label, model, codename in GRANTS:
        ct, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
        verb = codename.partition("_")[0]
        perm, _ = Permission.objects.get_or_create(
            content_type=ct, codename=codename, defaults={"name": f"Can {verb} {model}"}
        )
        group.permissions.add(perm)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name="admin").first()
    if group is not None:
        perms = Permission.objects.filter(
            content_type__app_label="axes", codename__in=[c for _, _, c in GRANTS]
        )
        group.permissions.remove(*perms)


class Migration(migrations.Migration):
    dependencies = [
        ("access", "0002_roles"),
        ("axes", "0010_accessattemptexpiration"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
