"""The health endpoint (over real HTTP), ``backuphealth`` and the monitors W010-W013: 503 only when
the backups are not safe, softer problems are warnings with 200."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core import checks
from django.core.management import CommandError, call_command

from safemigrate import catalogue, signals
from safemigrate.backup import create_backup
from safemigrate.exceptions import ChecksumMismatch
from safemigrate.manifest import update_manifest
from safemigrate.restore import verify_backup
from tests.migrapp.models import Item

pytestmark = pytest.mark.django_db(transaction=True)

KEYS = {
    "database",
    "healthy",
    "newest_verified_backup",
    "last_migration_run",
    "unapplied_migrations",
    "backups_total_bytes",
    "backup_folder_free_bytes",
    "last_offsite_copy",
    "problems",
    "warnings",
}


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - the live server
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def ids() -> set[str]:
    return {m.id for m in checks.run_checks(databases=["default"])}


def test_endpoint__healthy_over_http_without_login(live_server, backup_dir):
    Item.objects.create(name="precious")
    made = create_backup(alias="default").manifest
    status, body = get(f"{live_server.url}/healthz/backups")
    assert status == 200
    assert body["healthy"] is True
    [db] = body["databases"]
    assert set(db) == KEYS
    assert db["newest_verified_backup"]["name"] == made.name
    assert 0 <= db["newest_verified_backup"]["age_hours"] < 1
    assert db["unapplied_migrations"] == 0
    assert db["backups_total_bytes"] == made.size
    assert db["backup_folder_free_bytes"] > 0
    assert db["problems"] == []
    assert db["warnings"] == []
    assert "row_counts" not in json.dumps(body)


def test_endpoint__503_when_the_newest_backup_is_stale(live_server, backup_dir):
    Item.objects.create(name="precious")
    made = create_backup(alias="default").manifest
    old = datetime.now(UTC) - timedelta(hours=72)
    catalogue.record(update_manifest(made, created=old.isoformat(timespec="microseconds")))
    status, body = get(f"{live_server.url}/healthz/backups")
    assert status == 503
    assert body["healthy"] is False
    assert body["databases"][0]["problems"] == ["safemigrate.W001"]


def test_endpoint__503_with_unapplied_migrations(live_server, backup_dir):
    call_command("migrate", "migrapp", "0001", stdout=StringIO(), verbosity=0)
    try:
        status, body = get(f"{live_server.url}/healthz/backups")
    finally:
        call_command("migrate", "migrapp", stdout=StringIO(), verbosity=0)
    assert status == 503
    assert body["databases"][0]["unapplied_migrations"] == 1


def test_endpoint__503_after_a_rolled_back_migration(live_server, at_0001, monkeypatch):
    monkeypatch.setenv("MIGRAPP_FAIL", "1")
    with pytest.raises(CommandError):
        call_command("migrate", "migrapp", stdout=StringIO(), stderr=StringIO())
    status, body = get(f"{live_server.url}/healthz/backups")
    assert status == 503
    assert "safemigrate.W002" in body["databases"][0]["problems"]


def test_endpoint__200_with_warnings_for_softer_problems(live_server, backup_dir, settings):
    """A size over the cap or a backup that failed verification: reported, but the backups are safe."""
    Item.objects.create(name="precious")
    damaged = create_backup(alias="default").manifest
    create_backup(alias="default")
    with damaged.file_path.open("r+b") as f:
        f.seek(damaged.size // 2)
        f.write(b"\0damage\0")
    with pytest.raises(ChecksumMismatch):
        verify_backup(backup=damaged, alias="default")
    settings.SAFEMIGRATE_MAX_TOTAL_SIZE_MB = 0.000001
    status, body = get(f"{live_server.url}/healthz/backups")
    assert status == 200
    assert body["healthy"] is True
    [db] = body["databases"]
    assert db["problems"] == []
    assert db["warnings"] == ["safemigrate.W010", "safemigrate.W012"]
    call_command("backuphealth", stdout=StringIO())  # exit 0


def test_backuphealth__json_and_exit_code(backup_dir, settings):
    create_backup(alias="default")
    out = StringIO()
    call_command("backuphealth", format="json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["healthy"] is True
    assert set(report["databases"][0]) == KEYS
    settings.SAFEMIGRATE_MIN_FREE_SPACE_MB = 1e12  # a petabyte: no test machine has that free
    out = StringIO()
    with pytest.raises(CommandError, match=r"^unhealthy: default \(see the report above\)$") as failed:
        call_command("backuphealth", format="json", stdout=out)
    assert failed.value.returncode == 1
    assert json.loads(out.getvalue())["databases"][0]["problems"] == ["safemigrate.W011"]


def test_monitors__size_cap_and_free_space(backup_dir, settings, admin_client):
    create_backup(alias="default")
    assert not {"safemigrate.W010", "safemigrate.W011"} & ids()
    settings.SAFEMIGRATE_MAX_TOTAL_SIZE_MB = 0.000001
    settings.SAFEMIGRATE_MIN_FREE_SPACE_MB = 1e12
    assert {"safemigrate.W010", "safemigrate.W011"} <= ids()
    page = admin_client.get("/admin/safemigrate/backup/").content.decode()
    assert "SAFEMIGRATE_MAX_TOTAL_SIZE_MB is 1e-06" in page
    assert "SAFEMIGRATE_MIN_FREE_SPACE_MB is 1e+12" in page


def test_monitors__failed_verification_until_the_backup_is_gone(backup_dir):
    made = create_backup(alias="default").manifest
    with made.file_path.open("r+b") as f:
        f.seek(made.size // 2)
        f.write(b"\0damage\0")
    with pytest.raises(ChecksumMismatch):
        verify_backup(backup=made, alias="default")
    [warning] = [m for m in checks.run_checks(databases=["default"]) if m.id == "safemigrate.W012"]
    assert warning.msg.startswith(f"backup {made.name} failed verification (")
    call_command("cleanupbackups", keep=1, stdout=StringIO())  # keeps the newest verified only
    create_backup(alias="default")
    call_command("cleanupbackups", keep=1, stdout=StringIO())
    assert not made.file_path.exists()
    assert "safemigrate.W012" not in ids()


def test_backuphealth__notify_sends_backups_stale(backup_dir, settings):
    settings.SAFEMIGRATE_MIN_FREE_SPACE_MB = 1e12
    seen = []
    signals.backups_stale.connect(lambda **kw: seen.append(kw), dispatch_uid="test-stale", weak=False)
    try:
        with pytest.raises(CommandError):
            call_command("backuphealth", notify=True, stdout=StringIO())
    finally:
        signals.backups_stale.disconnect(dispatch_uid="test-stale")
    [event] = seen
    assert event["alias"] == "default"
    assert [p.id for p in event["problems"]] == ["safemigrate.W011"]
