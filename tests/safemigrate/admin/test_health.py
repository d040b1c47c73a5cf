"""The health signal: W001 (no recent verified backup), W002 (last migration run rolled back),
and the banner on the backup list."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core import checks
from django.core.management import call_command
from django.urls import reverse

from safemigrate import catalogue
from safemigrate.catalogue import db_datetime
from safemigrate.health import backup_health, database_has_data
from safemigrate.manifest import read_manifest, update_manifest
from safemigrate.models import MigrationRun
from tests.migrapp.models import Item

pytestmark = pytest.mark.django_db(transaction=True)

README = Path(__file__).resolve().parents[3] / "README.md"


def health_ids() -> list[str]:
    return [m.id for m in checks.run_checks(databases=["default"]) if m.id.startswith("safemigrate.W")]


def age_backup(backup, hours: float) -> None:
    manifest = read_manifest(backup.manifest_path)
    created = datetime.now(UTC) - timedelta(hours=hours)
    catalogue.record(update_manifest(manifest, created=created.isoformat(timespec="microseconds")))


def run(status: str, minutes_ago: int = 0, **fields) -> MigrationRun:
    return MigrationRun.objects.create(
        started=db_datetime(datetime.now(UTC) - timedelta(minutes=minutes_ago)),
        status=status,
        plan=["migrapp.0002_item_note"],
        **fields,
    )


def test_w001__silent_on_a_fresh_empty_project(backup_dir, django_user_model):
    """Only framework rows (permissions, content types, a superuser): nothing to warn about."""
    django_user_model.objects.create_superuser("admin", password="pw")
    assert not database_has_data(alias="default")
    assert health_ids() == []


def test_w001__data_without_any_verified_backup(backup_dir):
    Item.objects.create(name="precious")
    [message] = [m for m in checks.run_checks(databases=["default"]) if m.id == "safemigrate.W001"]
    assert isinstance(message, checks.Warning)
    assert message.msg == f"database 'default' holds data but has no verified backup in {backup_dir}"
    assert "manage.py backup" in message.hint


def test_w001__not_run_without_databases(backup_dir):
    """Like Django's database checks: plain `check`/runserver do not touch the database."""
    Item.objects.create(name="precious")
    assert [m for m in checks.run_checks() if m.id.startswith("safemigrate.W")] == []


def test_w001__fresh_backup_is_fine_and_stale_one_warns(backup, settings):
    Item.objects.create(name="precious")
    assert health_ids() == []
    settings.SAFEMIGRATE_MAX_BACKUP_AGE_HOURS = 24
    age_backup(backup, hours=72)
    [message] = [m for m in checks.run_checks(databases=["default"]) if m.id == "safemigrate.W001"]
    assert message.msg == (
        f"the newest verified backup of database 'default' is 3 days old ({backup.name}); "
        "SAFEMIGRATE_MAX_BACKUP_AGE_HOURS is 24"
    )
    settings.SAFEMIGRATE_MAX_BACKUP_AGE_HOURS = 0  # off
    assert health_ids() == []


def test_w001__unverified_backups_do_not_count(backup):
    Item.objects.create(name="precious")
    catalogue.record(update_manifest(read_manifest(backup.manifest_path), verified=False))
    assert health_ids() == ["safemigrate.W001"]


def test_w002__last_run_rolled_back(backup_dir):
    run("applied", minutes_ago=60)
    run("rolled_back", error="migrapp.0002_item_note: boom", backup_name="backup-x")
    [message] = [m for m in checks.run_checks(databases=["default"]) if m.id == "safemigrate.W002"]
    assert message.msg.startswith("the last migration run on database 'default' (")
    assert message.msg.endswith(") was rolled back: migrapp.0002_item_note: boom")
    assert message.hint.startswith("The database was restored from backup-x")


def test_w002__hint_follows_the_rollback_kind(backup_dir):
    run("rolled_back", error="boom", backup_name="backup-x", rollback="transaction")
    [message] = [m for m in checks.run_checks(databases=["default"]) if m.id == "safemigrate.W002"]
    assert message.hint.startswith("It was rolled back by the database transaction (nothing was written)")
    run("rolled_back", error="boom; the failed database is kept as db_smfailed_1", rollback="restore")
    [message] = [m for m in checks.run_checks(databases=["default"]) if m.id == "safemigrate.W002"]
    assert "the failed database was kept (named above)" in message.hint


def test_w002__failed_rollback_says_how_to_restore(backup_dir):
    run("failed", error="boom; rollback failed: disk", backup_name="backup-y")
    [message] = [m for m in checks.run_checks(databases=["default"]) if m.id == "safemigrate.W002"]
    assert "failed and its automatic restore failed too" in message.msg
    assert message.hint == (
        "Restore by hand: manage.py restore backup-y --no-safety-backup (see the recovery guide)."
    )


def test_w002__cleared_by_a_later_successful_run(backup_dir):
    run("rolled_back", minutes_ago=60, error="boom")
    run("applied")
    assert health_ids() == []


def test_health_checks__never_block_migrate(backup_dir):
    """Warnings only: `migrate` runs its checks and carries on."""
    Item.objects.create(name="precious")
    run("rolled_back", error="boom")
    err = StringIO()
    call_command("check", databases=["default"], stderr=err, stdout=StringIO())
    assert "safemigrate.W001" in err.getvalue()
    assert "safemigrate.W002" in err.getvalue()
    call_command("migrate", stdout=StringIO(), stderr=StringIO(), verbosity=0)


def test_backup_health__missing_tables_do_not_raise(backup_dir, monkeypatch):
    from django.db import DatabaseError

    from safemigrate.models import MigrationRun as Run

    def broken(*args, **kwargs):
        raise DatabaseError("no such table: safemigrate_migrationrun")

    monkeypatch.setattr(Run.objects, "using", broken)
    assert backup_health(alias="default").last_run is None


def test_banner__shows_the_problems_on_the_backup_list(admin_client, backup_dir):
    Item.objects.create(name="precious")
    run("rolled_back", error="migrapp.0002_item_note: boom")
    html = admin_client.get(reverse("admin:safemigrate_backup_changelist")).content.decode()
    banner = re.search(r'<ul class="messagelist safemigrate-health">(.*?)</ul>', html, re.S)
    assert banner is not None
    assert "safemigrate.W001: database &#x27;default&#x27; holds data but has no verified backup" in banner[1]
    assert "safemigrate.W002: the last migration run on database" in banner[1]


def test_banner__absent_when_healthy(admin_client, backup):
    html = admin_client.get(reverse("admin:safemigrate_backup_changelist")).content.decode()
    assert "safemigrate-health" not in html


def test_readme__lists_each_health_check_once():
    rows = re.findall(r"^\| `(safemigrate\.[EW]\d{3})` \|", README.read_text(), re.M)
    assert rows.count("safemigrate.W001") == 1
    assert rows.count("safemigrate.W002") == 1
