"""MirrorGeneration and the triggers that renew it on any change to the image mirror.

The triggers write a fresh random value (inserting the row if a flush removed it) rather
than adding one: a counter restarted by a flush or a restored dump could repeat a value
some process cached a different table under.
"""

from django.db import migrations, models

TABLES = [
    "images_image",
    "images_layer",
    "images_imagelayer",
    "images_repository",
    "images_reference",
]
EVENTS = ["INSERT", "UPDATE", "DELETE"]
RENEW = {
    "sqlite": "INSERT INTO images_mirrorgeneration (id, value) VALUES (1, random()) "
    "ON CONFLICT (id) DO UPDATE SET value = excluded.value",
    "postgresql": "INSERT INTO images_mirrorgeneration (id, value) "
    "VALUES (1, (random() * 9e18)::bigint) ON CONFLICT (id) DO UPDATE SET value = excluded.value",
}


def create_triggers(apps, schema_editor):
    apps.get_model("images", "MirrorGeneration").objects.create(pk=1, value=1)
    vendor = schema_editor.connection.vendor
    if vendor not in RENEW:
        raise RuntimeError(f"no mirror-generation triggers for {vendor}")
    with schema_editor.connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION images_bump_mirror_generation() RETURNS trigger AS $$ "
                f"BEGIN {RENEW[vendor]}; RETURN NULL; END; $$ LANGUAGE plpgsql"
            )
        for table in TABLES:
            for event in EVENTS:
                name = f"{table}_{event.lower()}_bumps_generation"
                if vendor == "sqlite":
                    cursor.execute(
                        f"CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN {RENEW[vendor]}; END"
                    )
                elif vendor == "postgresql":
                    # once per statement: a bulk write renews it once
                    cursor.execute(
                        f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH STATEMENT "
                        "EXECUTE FUNCTION images_bump_mirror_generation()"
                    )


def drop_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    with schema_editor.connection.cursor() as cursor:
        for table in TABLES:
            for event in EVENTS:
                name = f"{table}_{event.lower()}_bumps_generation"
                on = f" ON {table}" if vendor == "postgresql" else ""
                cursor.execute(f"DROP TRIGGER IF EXISTS {name}{on}")
        if vendor == "postgresql":
            cursor.execute("DROP FUNCTION IF EXISTS images_bump_mirror_generation()")


class Migration(migrations.Migration):
    dependencies = [("images", "0004_build")]

    operations = [
        migrations.CreateModel(
            name="MirrorGeneration",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("value", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
