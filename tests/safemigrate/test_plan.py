"""The plan and its risks, and the paths that bypass the safe sequence on purpose."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import migrations, models

from safemigrate.plan import DATA_CHANGING, DESTRUCTIVE, IRREVERSIBLE, operation_risks, pending_plan

pytestmark = pytest.mark.django_db(transaction=True)


def test_operation_risks__classifies_operations():
    assert operation_risks(migrations.RemoveField("item", "note"), backwards=False) == (DESTRUCTIVE,)
    assert operation_risks(
        migrations.AddField("item", "x", models.IntegerField(default=0)), backwards=True
    ) == (DESTRUCTIVE,)
    assert (
        operation_risks(migrations.AddField("item", "x", models.IntegerField(default=0)), backwards=False)
        == ()
    )
    assert operation_risks(migrations.RunPython(lambda a, s: None), backwards=False) == (
        DATA_CHANGING,
        IRREVERSIBLE,
    )
    assert DESTRUCTIVE in operation_risks(migrations.RunSQL("DROP TABLE x", "SELECT 1"), backwards=False)


def test_pending_plan__empty_when_up_to_date():
    plan = pending_plan(alias="default")
    assert plan.is_empty
    assert plan.has_applied_migrations


def test_safemigrate_plan__prints_risks_without_changing_anything(backup_dir):
    out = StringIO()
    call_command("safemigrate", "migrapp", "0001", plan=True, stdout=out)
    text = out.getvalue()
    assert "Unapply migrapp.0002_item_note  [data-changing, destructive]" in text
    assert "non-atomic, yet inside the plan's one transaction on this database" in text
    assert "Rollback: database transaction." in text
    assert pending_plan(alias="default").is_empty  # nothing ran
    assert not backup_dir.exists()


def test_safemigrate__bad_target_is_djangos_own_error():
    with pytest.raises(CommandError, match="Cannot find a migration matching 'nope' from app 'migrapp'"):
        call_command("migrate", "migrapp", "nope", stdout=StringIO())


def test_safemigrate__no_backup_and_fake_bypass(backup_dir):
    call_command("migrate", "migrapp", "0001", fake=True, stdout=StringIO())
    call_command("migrate", "migrapp", fake=True, stdout=StringIO())
    assert not backup_dir.exists()
    call_command("migrate", "migrapp", "0001", no_backup=True, stdout=StringIO())
    call_command("migrate", "migrapp", no_backup=True, stdout=StringIO())
    assert not backup_dir.exists()
    assert pending_plan(alias="default").is_empty


def test_migrate_is_safemigrate():
    from django.core.management import get_commands, load_command_class

    from safemigrate.management.commands.safemigrate import Command

    assert get_commands()["migrate"] == "safemigrate"
    assert isinstance(load_command_class("safemigrate", "migrate"), Command)
