"""SQLite's overlapped checks: what runs beside the copy still decides, and falls back when it must."""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import replace

import pytest
from django.contrib.auth.models import User
from django.db import connection

from safemigrate.backup import create_backup
from safemigrate.codec import BackupWriter, StoredFileVerifier
from safemigrate.exceptions import ChecksumMismatch, RestoreError
from safemigrate.restore import restore_backup
from safemigrate.vendors import sqlite as vendor

pytestmark = pytest.mark.django_db(transaction=True)


def content_types() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM django_content_type")
        return cursor.fetchone()[0]


@pytest.mark.parametrize("precheck", [None, "pre-migration check"])
def test_backup__commit_during_the_copy_checks_the_copy_instead(backup_dir, monkeypatch, precheck):
    """Another connection commits after the live check began: the manifest counts the copy
    (with the pre-check folded in too: the live check then stands for the live database only)."""
    real = vendor.Adapter._start_live_check

    def start_then_commit(self, live, *args):
        started = real(self, live, *args)
        assert started is not None  # the live check is in use when nobody writes
        other = sqlite3.connect(connection.settings_dict["NAME"])
        other.execute("INSERT INTO django_content_type (app_label, model) VALUES ('x', 'late')")
        other.commit()
        other.close()
        return started

    before = content_types()
    monkeypatch.setattr(vendor.Adapter, "_start_live_check", start_then_commit)
    result = create_backup(alias="default", reason="busy", precheck=precheck)
    assert content_types() == before + 1
    assert result.manifest.row_counts["django_content_type"] == before + 1
    assert result.manifest.verified


@pytest.mark.parametrize("verified", [True, False])
def test_restore__copy_failing_its_check_never_commits(backup_dir, monkeypatch, verified):
    """No safety backup: the check runs while the pages are copied, and a failure rolls the copy
    back before it commits (tiny steps, so the copy is well under way when the check fails)."""
    monkeypatch.setattr(vendor, "_GATED_STEP", 2)
    User.objects.create_user("kept")
    made = create_backup(alias="default", reason="gate").manifest
    wrong = replace(made, verified=verified, row_counts={**made.row_counts, "auth_user": 99})
    User.objects.create_user("also-kept")
    with pytest.raises(RestoreError, match="row counts differ from its manifest in auth_user"):
        restore_backup(backup=wrong, alias="default", safety_backup=False)
    assert sorted(User.objects.values_list("username", flat=True)) == ["also-kept", "kept"]
    assert not list(backup_dir.glob(".restore-*"))


def test_restore__gated_copy_commits_when_the_check_passes(backup_dir, monkeypatch):
    monkeypatch.setattr(vendor, "_GATED_STEP", 2)
    User.objects.create_user("kept")
    made = create_backup(alias="default", reason="gate").manifest
    User.objects.create_user("gone")
    restore_backup(backup=replace(made, verified=False), alias="default", safety_backup=False)
    assert list(User.objects.values_list("username", flat=True)) == ["kept"]


def test_stored_file_verifier__bytes_changed_on_disk_are_caught(tmp_path):
    path = tmp_path / "backup.zst"
    with path.open("wb") as f:
        writer = BackupWriter(f, compression="zstd", hash_raw=False)
        writer.write(os.urandom(200_000) * 4)
        stats = writer.finish()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    verifier = StoredFileVerifier(path, compression="zstd", key=None, name="backup.zst")
    with pytest.raises(ChecksumMismatch, match="backup.zst"):
        verifier.finish(stats)


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_stored_file_verifier__reads_back_while_written(tmp_path, compression):
    path = tmp_path / "backup"
    with path.open("wb") as f:
        writer = BackupWriter(f, compression=compression, key="k", hash_raw=False)
        verifier = StoredFileVerifier(path, compression=compression, key="k", name="backup")
        for _ in range(5):
            writer.write(os.urandom(300_000))
        stats = writer.finish()
        verifier.finish(stats)  # no error: the file is what was written, and decodes in full
    assert stats.raw_size == 1_500_000
    assert stats.raw_sha256 == ""


def test_stored_file_verifier__file_arriving_in_small_pieces(tmp_path):
    """Reading back a file still being written: a short read is a wait, never a truncation."""
    made = tmp_path / "made"
    with made.open("wb") as f:
        writer = BackupWriter(f, compression="zstd", key="k", hash_raw=False)
        writer.write(os.urandom(100_000) * 3)
        stats = writer.finish()
    data = made.read_bytes()
    pieces = [5] * 20 + [4093] * (len(data) // 4093 + 1)
    path = tmp_path / "arriving"
    with path.open("wb", buffering=0) as f:
        verifier = StoredFileVerifier(path, compression="zstd", key="k", name="arriving")
        at = 0
        for size in pieces:
            f.write(data[at : at + size])
            at += size
            time.sleep(0.0002)
        verifier.finish(stats)
