"""The safe-migrate sequence on a real SQLite file: apply, nothing to do, rollback."""

from __future__ import annotations

import os
import signal
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


@pytest.mark.django_db(transaction=True)
def test_safemigrate__applies_with_verified_backup(at_0001):
    before = set(at_0001.glob("backup-pre_migrate-*.zst"))
    out = StringIO()
    call_command("migrate", stdout=out)
    assert "Applied 1 migration(s) safely" in out.getvalue()
    assert len(set(at_0001.glob("backup-pre_migrate-*.zst")) - before) == 1
    run = MigrationRun.objects.latest("started")
    assert (run.status, run.rollback) == ("applied", "transaction")


@pytest.mark.django_db(transaction=True)
def test_safemigrate__failing_migration_rolls_back_to_identical_content(at_0001, monkeypatch):
    """A non-atomic migration failing half-way is rolled back by the one transaction it ran in."""
    before = dump_all_tables()
    monkeypatch.setenv("MIGRAPP_FAIL", "1")
    with pytest.raises(
        CommandError,
        match=r"migration migrapp\.0002_item_note failed \(MIGRAPP_FAIL: data migration failed "
        r"half-way\); rolled back by the database transaction — nothing was written; the "
        r"pre-migration backup backup-pre_migrate-\S+ is kept\. Fix the migration",
    ):
        call_command("migrate", stdout=StringIO())
    after = dump_all_tables()
    after.pop("safemigrate_migrationrun")
    before.pop("safemigrate_migrationrun")
    after.pop("safemigrate_backup")
    before.pop("safemigrate_backup")
    assert after == before
    run = MigrationRun.objects.latest("started")
    assert (run.status, run.rollback) == ("rolled_back", "transaction")


@pytest.mark.django_db(transaction=True)
def test_safemigrate__a_failure_closes_djangos_applying_line(at_0001, monkeypatch):
    """Django's "  Applying X..." ends in FAILED, so the error is not glued onto that line."""
    monkeypatch.setenv("MIGRAPP_FAIL", "1")
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("migrate", stdout=out, no_color=True)
    assert "  Applying migrapp.0002_item_note... FAILED\n" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_safemigrate__an_interrupted_migration_is_not_called_broken(at_0001, monkeypatch):
    """After Ctrl-C the advice is to run it again, not to fix a migration that did nothing wrong."""
    from django.db.migrations.executor import MigrationExecutor

    def interrupted(self, state, migration, fake=False, fake_initial=False):
        raise KeyboardInterrupt("SIGINT")  # Ctrl-C while Django applies the migration

    with monkeypatch.context() as patched:  # undone before the fixture's teardown migrates
        patched.setattr(MigrationExecutor, "apply_migration", interrupted)
        with pytest.raises(CommandError) as excinfo:
            call_command("migrate", stdout=StringIO())
    message = str(excinfo.value)
    assert "interrupted (SIGINT)" in message
    assert message.endswith("Run safemigrate again when you are ready")
    assert "Fix the migration" not in message


@pytest.mark.django_db(transaction=True)
def test_safemigrate__nothing_to_apply_takes_no_backup(backup_dir):
    call_command("migrate", stdout=StringIO())
    assert not backup_dir.exists() or not files_in(backup_dir)


@pytest.mark.django_db(transaction=True)
def test_safemigrate__second_ctrl_c_during_the_rollback_is_held(at_0001, monkeypatch):
    """A real SIGINT sent while the ROLLBACK runs: it completes, and the line says so."""
    from safemigrate.vendors.sqlite import Adapter

    before = dump_all_tables()
    end_migration = Adapter.end_migration

    def interrupted_end(self, *, commit):
        os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C, delivered during the ROLLBACK
        return end_migration(self, commit=commit)

    monkeypatch.setattr(Adapter, "end_migration", interrupted_end)
    monkeypatch.setenv("MIGRAPP_FAIL", "1")
    with pytest.raises(CommandError, match=r"rolled back by the database transaction — nothing was written"):
        call_command("migrate", stdout=StringIO())
    assert _content(dump_all_tables()) == _content(before)


@pytest.mark.django_db(transaction=True)
def test_safemigrate__ctrl_c_during_the_restore_path_is_held(at_0001, monkeypatch):
    """On the restore path a Ctrl-C while restoring cannot cut it short or make it look failed."""
    from safemigrate.vendors.sqlite import Adapter

    before = dump_all_tables()
    monkeypatch.setattr(Adapter, "rollback_kind", lambda self, plan: "restore")
    monkeypatch.setenv("MIGRAPP_FAIL", "1")

    class Interrupting(StringIO):
        def write(self, text):
            if "restoring" in text or "replacing the live database" in text:
                os.kill(os.getpid(), signal.SIGINT)
            return super().write(text)

    with pytest.raises(
        CommandError,
        match=r"failed half-way\); the database was restored from backup-pre_migrate-\S+ and is as it "
        r"was before",
    ):
        call_command("migrate", stdout=Interrupting())
    assert _content(dump_all_tables()) == _content(before)
    run = MigrationRun.objects.latest("started")
    assert (run.status, run.rollback) == ("rolled_back", "restore")


def _content(tables: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    return {t: rows for t, rows in tables.items() if not t.startswith("safemigrate_")}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("bad_row", "found"),
    [
        ("INSERT INTO auth_user_groups (user_id, group_id) VALUES (999, 999)", "foreign key violation"),
        ("INSERT INTO precheck_rule (n) VALUES (-1)", "CHECK constraint failed"),
    ],
)
def test_safemigrate__precheck_in_the_backup_still_enforces_data_rules(at_0001, bad_row, found):
    """Folded into the backup's check of the live database, the pre-check keeps the rules a
    copy's own check leaves out (foreign keys, CHECK constraints): refused, nothing kept."""
    before = set(files_in(at_0001))
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE precheck_rule (n INTEGER CHECK (n > 0))")
        cursor.execute("PRAGMA foreign_keys = OFF")
        cursor.execute("PRAGMA ignore_check_constraints = ON")
        cursor.execute(bad_row)
        cursor.execute("PRAGMA ignore_check_constraints = OFF")
        cursor.execute("PRAGMA foreign_keys = ON")
    seen: list[str] = []

    def record(sender, **kwargs):
        seen.append("backup_failed")

    from safemigrate.signals import backup_failed

    backup_failed.connect(record, dispatch_uid="test-precheck")
    try:
        with pytest.raises(
            CommandError, match=rf"^pre-migration check: database .* integrity check: .*{found}"
        ):
            call_command("migrate", stdout=StringIO(), stderr=StringIO())
    finally:
        backup_failed.disconnect(dispatch_uid="test-precheck")
    assert set(files_in(at_0001)) == before  # no backup, no leftover
    assert seen == []  # a refused database is not a failed backup (as before the fold)
    assert MigrationRun.objects.latest("started").status == "refused"
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM auth_user_groups WHERE user_id = 999")
        cursor.execute("DROP TABLE precheck_rule")
