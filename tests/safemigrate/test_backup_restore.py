"""Backups and restores in-process on the (file-backed) test database."""

from __future__ import annotations

import hashlib
import json
import stat
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection

from safemigrate.backup import create_backup
from safemigrate.manifest import read_manifest
from tests.safemigrate.helpers import files_in, temp_files

pytestmark = pytest.mark.django_db(transaction=True)


def backup(**options) -> dict:
    out = StringIO()
    call_command("backup", format="json", stdout=out, stderr=StringIO(), **options)
    return json.loads(out.getvalue())


def restore(*args, **options) -> str:
    out = StringIO()
    call_command("restore", *args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def test_backup__file_manifest_and_json_shape(backup_dir):
    User.objects.create_user("alice")
    data = backup(reason="Before Upgrade")
    path = backup_dir / data["name"]
    assert data["name"].startswith("backup-before_upgrade-")
    assert data["name"].endswith("-default.sqlite3.zst")
    assert data["path"] == str(path)
    assert data["size"] == path.stat().st_size
    assert data["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()  # sha256sum can check it
    assert data["verified"] is True
    assert data["pinned"] is False
    assert {"id", "created", "reason", "database"} <= data.keys()
    assert data["created"].endswith("+00:00")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    manifest_path = backup_dir / (data["name"] + ".manifest.json")
    assert stat.S_IMODE(manifest_path.stat().st_mode) == 0o600
    manifest = read_manifest(manifest_path)
    assert manifest.row_counts["auth_user"] == 1
    assert "0001_initial" in manifest.migrations["migrapp"]
    assert manifest.vendor == "sqlite"
    assert manifest.compression == "zstd"
    assert not temp_files(backup_dir)  # no temporary files left


def test_backup__text_output_names_path_size_checksum(backup_dir):
    out = StringIO()
    call_command("backup", stdout=out, stderr=StringIO())
    text = out.getvalue()
    for label in ("Backup:", "Path:", "Size:", "SHA-256:", "Rows:", "Backup done in"):
        assert label in text


@pytest.mark.parametrize("compress", ["zstd", "gzip", "none"])
def test_restore__round_trip_each_compression(backup_dir, settings, compress):
    settings.SAFEMIGRATE_COMPRESS = compress
    User.objects.create_user("keep")
    name = backup()["name"]
    User.objects.create_user("lose")
    output = restore(name, interactive=False)
    assert "Restored" in output
    assert sorted(User.objects.values_list("username", flat=True)) == ["keep"]


def test_restore__takes_a_safety_backup_and_keeps_later_backups_listed(backup_dir):
    first = backup()["name"]
    second = backup(reason="later")["name"]
    User.objects.create_user("after")
    output = restore(first, interactive=False)
    assert "Safety backup of the previous state: backup-pre_restore-" in output
    out = StringIO()
    call_command("backups", format="json", stdout=out)
    names = [b["name"] for b in json.loads(out.getvalue())]
    assert first in names
    assert second in names
    assert any(n.startswith("backup-pre_restore-") for n in names)
    from safemigrate.models import Backup

    assert set(Backup.objects.values_list("name", flat=True)) == set(names)


def test_restore__enter_does_not_confirm(backup_dir, monkeypatch):
    name = backup()["name"]
    User.objects.create_user("still-here")
    monkeypatch.setattr("builtins.input", lambda prompt: "")
    with pytest.raises(CommandError, match="restore cancelled; nothing was changed"):
        restore(name)
    assert User.objects.filter(username="still-here").exists()
    monkeypatch.setattr("builtins.input", lambda prompt: "yes")
    restore(name)
    assert not User.objects.filter(username="still-here").exists()


def test_restore__unknown_name_or_id(backup_dir):
    backup()
    with pytest.raises(CommandError, match="no backup 'nope' for database 'default'"):
        restore("nope", interactive=False)
    with pytest.raises(CommandError, match="no backup '9999'"):
        restore("9999", interactive=False)


def test_restore__by_catalogue_id(backup_dir):
    data = backup()
    User.objects.create_user("gone")
    restore(str(data["id"]), interactive=False, no_safety_backup=True)
    assert not User.objects.filter(username="gone").exists()


@pytest.mark.parametrize("damage", ["bitflip", "truncate"])
def test_restore__damaged_backup_refused_database_unchanged(backup_dir, damage):
    User.objects.create_user("present")
    name = backup()["name"]
    path = backup_dir / name
    data = bytearray(path.read_bytes())
    if damage == "bitflip":
        data[len(data) // 2] ^= 0x01
    else:
        data = data[: len(data) // 2]
    path.write_bytes(bytes(data))
    User.objects.create_user("also-present")
    with pytest.raises(CommandError, match="damaged|truncated|checksum mismatch"):
        restore(name, interactive=False)
    assert User.objects.count() == 2
    assert not temp_files(backup_dir)


def test_restore__file_that_is_not_a_backup(backup_dir, tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello, I am not a database\n" * 100)
    with pytest.raises(CommandError, match="does not contain an SQLite database"):
        restore(file=str(junk), interactive=False, no_safety_backup=True)
    with pytest.raises(CommandError, match="no file at"):
        restore(file=str(tmp_path / "missing.zst"), interactive=False)


def test_restore__file_copied_elsewhere_with_its_manifest(backup_dir, tmp_path):
    name = backup()["name"]
    User.objects.create_user("gone")
    elsewhere = tmp_path / "offsite"
    elsewhere.mkdir()
    for suffix in ("", ".manifest.json"):
        (elsewhere / (name + suffix)).write_bytes((backup_dir / (name + suffix)).read_bytes())
    restore(file=str(elsewhere / name), interactive=False, no_safety_backup=True)
    assert not User.objects.filter(username="gone").exists()


def test_restore__backup_from_newer_code_warns_and_needs_force(backup_dir):
    data = backup()
    manifest_path = backup_dir / (data["name"] + ".manifest.json")
    manifest = json.loads(manifest_path.read_text())
    manifest["migrations"]["migrapp"].append("0099_from_the_future")
    manifest_path.write_text(json.dumps(manifest))
    err = StringIO()
    with pytest.raises(CommandError, match="newer code.*add --force"):
        call_command("restore", data["name"], interactive=False, stdout=StringIO(), stderr=err)
    assert "migration(s) this code does not know" in err.getvalue()


def test_restore__backup_of_another_database_warns(backup_dir):
    data = backup()
    manifest_path = backup_dir / (data["name"] + ".manifest.json")
    manifest = json.loads(manifest_path.read_text())
    manifest["database_name"] = "/elsewhere/other.sqlite3"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CommandError, match="made from /elsewhere/other.sqlite3"):
        restore(data["name"], interactive=False)
    restore(data["name"], interactive=False, force=True)


def test_restore__works_without_the_catalogue_table(backup_dir):
    """The catalogue lives in the database being restored; the folder alone is enough."""
    name = backup()["name"]
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE safemigrate_migrationrun")
        cursor.execute("DROP TABLE safemigrate_backup")
    out = StringIO()
    call_command("backups", stdout=out)
    assert name in out.getvalue()
    restore("--latest", interactive=False, no_safety_backup=True)
    from safemigrate.models import Backup

    assert Backup.objects.filter(name=name).exists()


def test_backups__rescan_rebuilds_catalogue(backup_dir):
    from safemigrate.models import Backup

    names = {backup()["name"], backup(reason="two")["name"]}
    Backup.objects.all().delete()
    call_command("backups", rescan=True, stdout=StringIO())
    assert set(Backup.objects.values_list("name", flat=True)) == names


def test_encryption__round_trip_and_wrong_key(backup_dir, settings):
    settings.SAFEMIGRATE_ENCRYPTION_KEY = "correct horse battery staple"
    User.objects.create_user("secret")
    data = backup()
    path = backup_dir / data["name"]
    assert data["name"].endswith(".sqlite3.zst.enc")
    assert b"secret" not in path.read_bytes()
    User.objects.create_user("later")
    settings.SAFEMIGRATE_ENCRYPTION_KEY = "wrong key"
    with pytest.raises(CommandError, match="wrong SAFEMIGRATE_ENCRYPTION_KEY"):
        restore(data["name"], interactive=False, no_safety_backup=True)
    settings.SAFEMIGRATE_ENCRYPTION_KEY = None
    with pytest.raises(CommandError, match="is encrypted; set SAFEMIGRATE_ENCRYPTION_KEY"):
        restore(data["name"], interactive=False, no_safety_backup=True)
    assert User.objects.count() == 2  # unchanged by the refused restores
    settings.SAFEMIGRATE_ENCRYPTION_KEY = "correct horse battery staple"
    restore(data["name"], interactive=False, no_safety_backup=True)
    assert list(User.objects.values_list("username", flat=True)) == ["secret"]


def test_backup__disk_full_leaves_nothing(backup_dir, monkeypatch):
    import errno

    from safemigrate.codec import compression

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(compression._HashingSink, "write", full)
    with pytest.raises(CommandError, match="disk full writing .*SAFEMIGRATE_BACKUP_DIR"):
        backup()
    assert files_in(backup_dir) == []


def test_backup__not_enough_free_space_refused_up_front(backup_dir, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(100, 100, 0))
    with pytest.raises(CommandError, match="disk full: .* bytes free"):
        backup()


def test_backup__folder_that_cannot_be_created(tmp_path, settings):
    """A backup folder under a regular file (works as root too, unlike permission bits)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    settings.SAFEMIGRATE_BACKUP_DIR = str(blocker / "backups")
    with pytest.raises(CommandError, match="cannot create the backup folder .*SAFEMIGRATE_BACKUP_DIR"):
        backup()


def test_verifybackup__ok_and_damaged(backup_dir):
    good = backup()["name"]
    bad = backup(reason="bad")["name"]
    path = backup_dir / bad
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    out = StringIO()
    call_command("verifybackup", good, stdout=out)
    assert f"OK      {good}" in out.getvalue()
    out = StringIO()
    with pytest.raises(CommandError, match="1 of 2 backup"):
        call_command("verifybackup", all=True, stdout=out)
    assert f"FAILED  {bad}" in out.getvalue()
    from safemigrate.catalogue import find_backup
    from safemigrate.models import Backup

    assert find_backup(bad, alias="default").verified is False  # no longer trusted
    assert Backup.objects.get(name=bad).verified is False
    assert find_backup(good, alias="default").verified is True


def test_create_backup__library_returns_result(backup_dir):
    result = create_backup(alias="default", reason="lib")
    assert result.path.is_file()
    assert result.manifest.verified
    assert result.id is not None
