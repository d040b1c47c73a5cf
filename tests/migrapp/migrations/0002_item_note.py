"""Non-atomic on purpose: schema change, then a data migration that can fail half-way.

With MIGRAPP_FAIL=1 it rewrites some rows and then raises, leaving (without safemigrate) a new
column, half-changed data and the migration unrecorded: the case that loses data on SQLite.
MIGRAPP_ATOMIC=1 makes it atomic; MIGRAPP_SQL appends a RunSQL statement (seen in the plan) and
MIGRAPP_PYSQL a RunPython that executes one (not seen until it runs), e.g. VACUUM.
MIGRAPP_WAIT_WRITES=<file>:<n> first holds the migration (after the backup, before the column is
added) until a writer process has made n more writes: tests.safemigrate.helpers.Writer.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

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


def wait_for_writes(apps, schema_editor):
    """Wait (up to 60 s) until the writer's attempt counter in <file> has gone up by n (so n - 1
    writes were made meanwhile); <file>.window gets the counter before and after."""
    path, _, count = os.environ["MIGRAPP_WAIT_WRITES"].rpartition(":")
    progress = Path(path)

    def attempts() -> int:
        try:
            return int(progress.read_text())
        except (OSError, ValueError):  # not written yet
            return 0

    first = last = attempts()
    deadline = time.monotonic() + 60
    while last < first + int(count) and time.monotonic() < deadline:
        time.sleep(0.01)
        last = attempts()
    Path(f"{path}.window").write_text(f"{first} {last}")


def run_sql(apps, schema_editor):
    schema_editor.execute(os.environ["MIGRAPP_PYSQL"])


class Migration(migrations.Migration):
    atomic = os.environ.get("MIGRAPP_ATOMIC") == "1"
    dependencies = [("migrapp", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="item",
            name="note",
            field=models.CharField(blank=True, default="", max_length=200),
        ),
        migrations.RunPython(fill_notes, clear_notes),
    ]
    if os.environ.get("MIGRAPP_WAIT_WRITES"):
        operations.insert(0, migrations.RunPython(wait_for_writes, migrations.RunPython.noop))
    if os.environ.get("MIGRAPP_SQL"):
        operations.append(migrations.RunSQL(os.environ["MIGRAPP_SQL"], migrations.RunSQL.noop))
    if os.environ.get("MIGRAPP_PYSQL"):
        operations.append(migrations.RunPython(run_sql, migrations.RunPython.noop))
