"""The run journal in the backup folder: the migration-run log survives restores, and is read as
untrusted input."""

from __future__ import annotations

import json
import logging
import stat
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from safemigrate.health import backup_health
from safemigrate.journal import JOURNAL_FILE, MAX_LINE_BYTES, read_journal
from safemigrate.models import MigrationRun

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pending(at_0001):
    """migrapp.0002 pending, with no run logged yet (taking migrapp back to 0001 was one)."""
    MigrationRun.objects.all().delete()
    (at_0001 / JOURNAL_FILE).unlink(missing_ok=True)
    return at_0001


def runs() -> list[tuple[str, str]]:
    return list(MigrationRun.objects.order_by("started").values_list("status", "error"))


def fail_migration(monkeypatch) -> None:
    monkeypatch.setenv("MIGRAPP_FAIL", "1")
    with pytest.raises(CommandError, match="rolled back"):
        call_command("migrate", stdout=StringIO(), stderr=StringIO())
    monkeypatch.delenv("MIGRAPP_FAIL")


def test_journal__a_restore_keeps_the_rolled_back_run_and_w002(pending, monkeypatch):
    """Restoring the pre-migration backup (made before the run) used to erase the run and W002."""
    fail_migration(monkeypatch)
    assert [status for status, _ in runs()] == ["rolled_back"]
    call_command("restore", "--latest", interactive=False, stdout=StringIO(), stderr=StringIO())
    assert [status for status, _ in runs()] == ["rolled_back"]
    assert "MIGRAPP_FAIL" in runs()[0][1]
    run = MigrationRun.objects.get()
    assert run.backup is not None  # linked to its backup in the rebuilt catalogue
    assert run.backup.name == run.backup_name
    assert "safemigrate.W002" in {p.id for p in backup_health(alias="default").problems}


def test_journal__restore_twice_adds_no_duplicates(pending, monkeypatch):
    fail_migration(monkeypatch)
    for _ in range(2):
        call_command("restore", "--latest", interactive=False, stdout=StringIO(), stderr=StringIO())
    call_command("migrate", stdout=StringIO(), stderr=StringIO())
    assert [status for status, _ in runs()] == ["rolled_back", "applied"]
    journal = pending / JOURNAL_FILE
    assert len(journal.read_text().splitlines()) == 2
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600


def test_journal__backups_rescan_rebuilds_the_run_log(pending, monkeypatch):
    fail_migration(monkeypatch)
    call_command("migrate", stdout=StringIO(), stderr=StringIO())
    MigrationRun.objects.all().delete()
    out = StringIO()
    call_command("backups", rescan=True, stdout=out)
    assert "2 migration run(s) added from the journal" in out.getvalue()
    assert [status for status, _ in runs()] == ["rolled_back", "applied"]


def test_journal__rows_from_before_the_journal_are_kept(pending):
    """Union, never a replacement: a row the journal lacks (written by an older version) stays."""
    from django.utils import timezone

    MigrationRun.objects.create(started=timezone.now(), status="applied", database="default")
    call_command("backups", rescan=True, stdout=StringIO())
    assert [status for status, _ in runs()] == ["applied"]


def test_journal__bad_lines_are_skipped_with_one_warning(pending, monkeypatch, caplog):
    fail_migration(monkeypatch)
    journal = pending / JOURNAL_FILE
    good = json.loads(journal.read_text())
    bad = [
        b"{not json",
        json.dumps([1, 2]).encode(),
        json.dumps({**good, "status": "hacked"}).encode(),
        json.dumps({**good, "plan": "migrapp.0002"}).encode(),
        json.dumps({**good, "pid": True}).encode(),
        json.dumps({**good, "started": "yesterday"}).encode(),
        json.dumps({**good, "backup_name": "../../etc/passwd"}).encode(),
        json.dumps({**good, "database": "de fault"}).encode(),
        json.dumps({**good, "error": "x" * (MAX_LINE_BYTES + 1)}).encode(),
        json.dumps({**good, "v": 99}).encode(),
    ]
    with journal.open("ab") as f:
        f.write(b"\n".join(bad) + b"\n")
    with caplog.at_level(logging.WARNING, logger="safemigrate"):
        entries = read_journal(journal)
    assert len(entries) == 1
    warnings = [r.getMessage() for r in caplog.records if "journal" in r.getMessage()]
    assert len(warnings) == 1
    assert "skipped 10 bad line(s)" in warnings[0]
    assert "line 2: not JSON" in warnings[0]


def test_journal__a_line_cut_by_a_crash_does_not_spoil_the_next(pending, monkeypatch):
    fail_migration(monkeypatch)
    journal = pending / JOURNAL_FILE
    with journal.open("ab") as f:
        f.write(b'{"v":1,"database":"default","sta')  # a crash mid-write
    call_command("migrate", stdout=StringIO(), stderr=StringIO())
    assert [e.status for e in read_journal(journal)] == ["rolled_back", "applied"]


def test_journal__a_symlink_is_not_followed(pending, tmp_path):
    target = tmp_path / "elsewhere.jsonl"
    target.write_text("")
    (pending / JOURNAL_FILE).symlink_to(target)
    call_command("migrate", stdout=StringIO(), stderr=StringIO())
    assert target.read_text() == ""  # nothing written through the link
    assert MigrationRun.objects.get().status == "applied"  # the run is still recorded
    assert read_journal(pending / JOURNAL_FILE) == []


def test_journal__with_a_key_unauthenticated_lines_are_skipped(pending, monkeypatch, settings):
    settings.SAFEMIGRATE_ENCRYPTION_KEY = "a long enough test passphrase"
    fail_migration(monkeypatch)
    journal = pending / JOURNAL_FILE
    signed = json.loads(journal.read_text())
    assert signed["mac"].startswith("hmac-sha256:")
    forged = {**signed, "error": "forged", "started": "2026-01-01T00:00:00+00:00"}
    unsigned = {k: v for k, v in forged.items() if k != "mac"}
    unsigned["started"] = "2026-01-02T00:00:00+00:00"
    with journal.open("a") as f:
        f.write(json.dumps(forged) + "\n" + json.dumps(unsigned) + "\n")
    MigrationRun.objects.all().delete()
    call_command("backups", rescan=True, stdout=StringIO())
    assert [status for status, _ in runs()] == ["rolled_back"]
    assert "forged" not in runs()[0][1]


def test_journal__a_restore_brings_back_the_runs_of_every_database(pending, monkeypatch):
    """The restored database may hold the run log of other aliases too (one table for all)."""
    fail_migration(monkeypatch)
    journal = pending / JOURNAL_FILE
    other = {**json.loads(journal.read_text()), "database": "reporting"}
    with journal.open("a") as f:
        f.write(json.dumps(other) + "\n")
    call_command("restore", "--latest", interactive=False, stdout=StringIO(), stderr=StringIO())
    assert sorted(MigrationRun.objects.values_list("database", flat=True)) == ["default", "reporting"]
