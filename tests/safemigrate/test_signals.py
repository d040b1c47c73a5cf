"""safemigrate.signals: each event is sent once, by the library, whichever door it came through."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from safemigrate import signals
from safemigrate.backup import create_backup
from safemigrate.exceptions import BackupError, ChecksumMismatch, SafeMigrateError
from safemigrate.models import Backup, MigrationRun
from safemigrate.restore import restore_backup, verify_backup


@pytest.fixture
def caught():
    """Every safemigrate signal sent during the test, as (event, sender, kwargs)."""
    seen: list[tuple[str, type, dict]] = []

    def record(sender, signal, **kwargs):
        seen.append((signals.event_name(signal), sender, kwargs))

    for signal in signals.EVENTS.values():
        signal.connect(record, dispatch_uid="test-caught")
    yield seen
    for signal in signals.EVENTS.values():
        signal.disconnect(dispatch_uid="test-caught")


def events(seen) -> list[str]:
    return [name for name, _sender, _kwargs in seen]


@pytest.mark.django_db(transaction=True)
def test_signals__backup_created_from_command_and_admin(backup_dir, caught, admin_client):
    call_command("backup", stdout=StringIO(), stderr=StringIO())
    admin_client.post("/admin/safemigrate/backup/backup-now/", {"database": "default"})
    created = [(s, k) for name, s, k in caught if name == "backup_created"]
    assert [k["reason"] for _s, k in created] == ["manual", "admin"]
    assert all(s is Backup and k["alias"] == "default" for s, k in created)
    assert all(Path(k["backup"].file_path).is_file() for _s, k in created)


@pytest.mark.django_db(transaction=True)
def test_signals__backup_failed(tmp_path, settings, caught):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    settings.SAFEMIGRATE_BACKUP_DIR = str(blocker / "backups")
    with pytest.raises(BackupError):
        create_backup(alias="default", reason="manual")
    [(name, _sender, kwargs)] = caught
    assert name == "backup_failed"
    assert kwargs["reason"] == "manual"
    assert "cannot create the backup folder" in kwargs["error"]


@pytest.mark.django_db(transaction=True)
def test_signals__migration_applied_once(at_0001, caught):
    call_command("migrate", stdout=StringIO())
    runs = [(n, s, k) for n, s, k in caught if n.startswith("migration_") or n == "rollback_failed"]
    [(name, sender, kwargs)] = runs
    assert (name, sender) == ("migration_applied", MigrationRun)
    assert kwargs["plan"] == ["migrapp.0002_item_note"]
    assert kwargs["backup_name"].startswith("backup-pre_migrate-")
    assert events(caught) == ["backup_created", "migration_applied"]


@pytest.mark.django_db(transaction=True)
def test_signals__migration_rolled_back(at_0001, caught, monkeypatch):
    monkeypatch.setenv("MIGRAPP_FAIL", "1")
    with pytest.raises(CommandError):
        call_command("migrate", stdout=StringIO())
    first, *between, last = events(caught)
    assert (first, last) == ("backup_created", "migration_rolled_back")
    assert set(between) <= {"restore_done"}  # undone by a restore of the backup (or a ROLLBACK)
    kwargs = caught[-1][2]
    assert "MIGRAPP_FAIL" in kwargs["error"]
    assert kwargs["backup_name"] == caught[0][2]["backup"].name


@pytest.mark.django_db(transaction=True)
def test_signals__restore_done_and_verification_failed(backup_dir, caught):
    good = create_backup(alias="default").manifest
    restore_backup(backup=good, alias="default", safety_backup=True)
    name, _sender, kwargs = caught[-1]
    assert name == "restore_done"
    assert kwargs["backup"].name == good.name
    assert kwargs["safety_backup"].reason == "pre_restore"
    with good.file_path.open("r+b") as f:
        f.seek(good.size // 2)
        f.write(b"\0garbage\0")
    with pytest.raises(ChecksumMismatch):
        verify_backup(backup=good, alias="default")
    name, _sender, kwargs = caught[-1]
    assert (name, kwargs["backup"].name) == ("verification_failed", good.name)


@pytest.mark.django_db(transaction=True)
def test_signals__a_failing_receiver_never_fails_the_backup(backup_dir, caplog):
    def broken(**kwargs):
        raise RuntimeError("receiver bug")

    signals.backup_created.connect(broken, dispatch_uid="test-broken")
    try:
        result = create_backup(alias="default")
    finally:
        signals.backup_created.disconnect(dispatch_uid="test-broken")
    assert result.path.is_file()
    assert "of backup_created failed: receiver bug" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_signals__a_backup_deleted_meanwhile_is_not_a_failed_verification(backup_dir, caught):
    """Rotation may delete a backup while it is verified: gone, not damaged, so no alarm."""
    made = create_backup(alias="default").manifest
    made.file_path.unlink()
    with pytest.raises(SafeMigrateError):
        verify_backup(backup=made, alias="default")
    assert "verification_failed" not in events(caught)
