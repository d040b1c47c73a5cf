"""Non-atomic on purpose: schema change, then a data migration that can fail half-way.

With MIGRAPP_FAIL=1 it rewrites some rows and then raises, leaving (without safemigrate) a new
column, half-changed data and the migration unrecorded: the case that loses data on SQLite.
"""

from __future__ import annotations

import os
import time

from django.db import migrations, models


def fill_notes(apps, schema_editor):
    Item = apps.get_model("migrapp", "Item")
    for n, item in enumerate(Item.objects.order_by("id")):
        item.note = f"note for {item.name}"
        item.qty = item.qty * 10
        item.save()
        if os.environ.get("MIGRAPP_SLOW") and n == 0:
            # For interrupt tests: a window in which a signal lands mid-migration.
            marker = os.environ.get("MIGRAPP_SLOW_MARKER")
            if marker:
                open(marker, "w").close()  # noqa: PTH123, SIM115
            time.sleep(float(os.environ["MIGRAPP_SLOW"]))
        if os.environ.get("MIGRAPP_FAIL") == "1" and n >= 1:
            raise RuntimeError("MIGRAPP_FAIL: data migration failed half-way")
    if os.environ.get("MIGRAPP_FAIL") == "1":
        raise RuntimeError("MIGRAPP_FAIL: data migration failed")


def clear_notes(apps, schema_editor):
    Item = apps.get_model("migrapp", "Item")
    for item in Item.objects.all():
        item.qty = item.qty // 10
        item.save()


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("migrapp", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="item",
            name="note",
            field=models.CharField(blank=True, default="", max_length=200),
        ),
        migrations.RunPython(fill_notes, clear_notes),
    ]
