"""The safe-migrate sequence on a real SQLite file: apply, nothing to do, rollback."""

from __future__ import annotations

import os
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from safemigrate.models import MigrationRun
from tests.safemigrate.helpers import files_in


def dump_all_tables() -> dict[str, list[tuple]]:
    """Every row of every table: the content a rollback must bring back exactly."""
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        return {
            t: cursor.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall()  # noqa: S608
            for t in tables
        }


@pytest.fixture
def at_0001(backup_dir):
    """migrapp back at 0001 with three items: 0002 is pending."""
    call_command("migrate", "migrapp", "0001", stdout=StringIO(), verbosity=0)
    with connection.cursor() as cursor:
        for n in range(3):
            cursor.execute("INSERT INTO migrapp_item (name, qty) VALUES (%s, %s)", [f"item{n}", n])
    yield backup_dir
    os.environ.pop("MIGRAPP_FAIL", None)
    call_command("migrate", "migrapp", stdout=StringIO(), verbosity=0)


@pytest.mark.django_db(transaction=True)
def test_safemigrate__applies_with_verified_backup(at_0001):
    before = set(at_0001.glob("backup-pre_migrate-*.zst"))
    out = StringIO()
    call_command("migrate", stdout=out)
    assert "Applied 1 migration(s) safely" in out.getvalue()
    assert len(set(at_0001.glob("backup-pre_migrate-*.zst")) - before) == 1
    assert MigrationRun.objects.latest("started").status == "applied"


@pytest.mark.django_db(transaction=True)
def test_safemigrate__failing_migration_rolls_back_to_identical_content(at_0001, monkeypatch):
    """A non-atomic migration failing half-way is undone: every table's rows as before."""
    before = dump_all_tables()
    monkeypatch.setenv("MIGRAPP_FAIL", "1")
    with pytest.raises(
        CommandError,
        match=r"migration migrapp\.0002_item_note failed .*restored from backup-pre_migrate-",
    ):
        call_command("migrate", stdout=StringIO())
    after = dump_all_tables()
    after.pop("safemigrate_migrationrun")
    before.pop("safemigrate_migrationrun")
    after.pop("safemigrate_backup")
    before.pop("safemigrate_backup")
    assert after == before
    assert MigrationRun.objects.latest("started").status == "rolled_back"


@pytest.mark.django_db(transaction=True)
def test_safemigrate__nothing_to_apply_takes_no_backup(backup_dir):
    call_command("migrate", stdout=StringIO())
    assert not backup_dir.exists() or not files_in(backup_dir)
