"""safemigrate queues its housekeeping through django-q2 after a successful run (sync in tests)."""

from __future__ import annotations

import os
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django_q.models import Task

from safemigrate.manifest import list_manifests, update_manifest


@pytest.fixture
def at_0001(backup_dir):
    """migrapp back at 0001 with three items: 0002 is pending."""
    call_command("migrate", "migrapp", "0001", stdout=StringIO(), verbosity=0)
    with connection.cursor() as cursor:
        for n in range(3):
            cursor.execute("INSERT INTO migrapp_item (name, qty) VALUES (%s, %s)", [f"item{n}", n])
    Task.objects.all().delete()  # going back to 0001 was a safe migration too: start clean
    yield backup_dir
    os.environ.pop("MIGRAPP_FAIL", None)
    call_command("migrate", "migrapp", stdout=StringIO(), verbosity=0)


@pytest.mark.django_db(transaction=True)
def test_safemigrate__queues_rotation_after_success(at_0001, make_backups, settings):
    settings.SAFEMIGRATE_KEEP = 1
    settings.SAFEMIGRATE_PIN_PRE_MIGRATE_DAYS = 0  # no automatic pins: this is about KEEP
    make_backups(2, reason="pre_migrate")  # rotation keeps SAFEMIGRATE_KEEP per reason class
    for manifest in list_manifests(at_0001):  # the fixture's own migration was pinned
        update_manifest(manifest, pinned_until=None)
    before = {m.name for m in list_manifests(at_0001)}
    call_command("migrate", stdout=StringIO())
    task = Task.objects.get(func="safemigrate.tasks.rotate_backups")
    assert task.success is True
    assert task.group == "safemigrate"
    assert task.args == ("default",)
    assert set(task.result["deleted"]) == before
    remaining = [m.name for m in list_manifests(at_0001)]
    assert len(remaining) == 1
    assert remaining[0] not in before
    assert remaining[0].startswith("backup-pre_migrate-")
    assert not Task.objects.filter(func="safemigrate.tasks.dump_json").exists()


@pytest.mark.django_db(transaction=True)
def test_safemigrate__queues_json_dump_when_configured(at_0001, settings):
    settings.SAFEMIGRATE_JSON_AFTER_MIGRATE = True
    call_command("migrate", stdout=StringIO())
    task = Task.objects.get(func="safemigrate.tasks.dump_json")
    assert task.success is True
    assert task.group == "safemigrate"
    assert Path(task.result["path"]).is_file()
    assert task.result["models"]["migrapp.item"] == 3
    assert Task.objects.filter(func="safemigrate.tasks.rotate_backups", success=True).exists()


@pytest.mark.django_db(transaction=True)
def test_safemigrate__failed_migration_queues_nothing(at_0001, monkeypatch, settings):
    settings.SAFEMIGRATE_JSON_AFTER_MIGRATE = True
    monkeypatch.setenv("MIGRAPP_FAIL", "1")
    with pytest.raises(CommandError, match=r"migration migrapp\.0002_item_note failed"):
        call_command("migrate", stdout=StringIO())
    assert not Task.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_safemigrate__nothing_to_apply_queues_nothing(backup_dir):
    call_command("migrate", stdout=StringIO())
    assert not Task.objects.exists()
