"""Off-site copies through a real FileSystemStorage: copy, queue, list, fetch + restore, failures."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core import checks
from django.core.management import CommandError, call_command
from django_q.models import Task

from safemigrate.checks import check_settings
from safemigrate.exceptions import BackupError
from safemigrate.manifest import read_manifest
from safemigrate.offsite import copy_offsite, fetch_offsite
from tests.safemigrate.helpers import temp_files

pytestmark = pytest.mark.django_db(transaction=True)


def backup(**options) -> dict:
    out = StringIO()
    call_command("backup", format="json", stdout=out, stderr=StringIO(), **options)
    return json.loads(out.getvalue())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_backup_offsite__copies_file_and_manifest_and_records_it(remote, backup_dir):
    data = backup(offsite=True, with_json=True)
    name = data["name"]
    assert sha256(remote / name) == data["sha256"] == sha256(backup_dir / name)
    dump = data["json_dump"]["file"]
    assert sha256(remote / dump) == sha256(backup_dir / dump)
    assert (remote / (dump + ".dump-manifest.json")).is_file()
    local = read_manifest(backup_dir / (name + ".manifest.json"))
    assert local.offsite["storage"] == "offsite"
    assert local.offsite["name"] == name
    assert data["offsite"] == local.offsite
    # The copy's manifest is the local one, offsite field included (the manifest goes last).
    assert (remote / (name + ".manifest.json")).read_bytes() == local.path.read_bytes()
    assert stat.S_IMODE((remote / name).stat().st_mode) == 0o600


def test_copy_offsite__again_keeps_identical_objects(remote, backup_dir):
    name = backup(offsite=True)["name"]
    again = copy_offsite(manifest=read_manifest(backup_dir / (name + ".manifest.json")))
    assert again.kept == [name]
    assert sorted(p.name for p in remote.iterdir()) == [name, name + ".manifest.json"]


def test_copy_offsite__refuses_to_overwrite_a_different_object(remote, backup_dir):
    name = backup()["name"]  # the queued copy ran (sync mode): replace it with something else
    (remote / name).write_bytes(b"another backup")
    manifest = read_manifest(backup_dir / (name + ".manifest.json"))
    with pytest.raises(
        BackupError,
        match=rf"^off-site copy refused: storage 'offsite' already holds a different {name} "
        r"\(14 bytes, the local file has \d+\); it was not overwritten",
    ):
        copy_offsite(manifest=manifest)
    assert (remote / name).read_bytes() == b"another backup"
    assert read_manifest(manifest.path).offsite == manifest.offsite  # local manifest untouched


def test_backup__queues_the_copy_when_storage_is_set(remote, backup_dir):
    name = backup()["name"]
    task = Task.objects.get(func="safemigrate.tasks.copy_offsite")
    assert task.success is True
    assert task.args == (name, "default")
    assert task.group == "safemigrate"
    assert task.result["objects"] == [name, name + ".manifest.json"]
    assert task.result["sha256_checked"] is True
    assert sha256(remote / name) == sha256(backup_dir / name)


def test_backup__no_storage_no_copy_queued(backup_dir):
    backup()
    assert not Task.objects.filter(func="safemigrate.tasks.copy_offsite").exists()
    with pytest.raises(CommandError, match="no off-site storage: SAFEMIGRATE_STORAGE is not set"):
        backup(offsite=True)
    assert len(list(backup_dir.glob("backup-*"))) == 2  # the first backup + manifest: refused before


def test_scheduled_backup__queues_the_copy(remote, backup_dir):
    from safemigrate.tasks import scheduled_backup

    name = scheduled_backup("default")["name"]
    assert Task.objects.get(func="safemigrate.tasks.copy_offsite").success is True
    assert (remote / (name + ".manifest.json")).is_file()


def test_backups_offsite__lists_what_the_storage_holds(remote, backup_dir):
    first = backup(offsite=True, reason="first")
    second = backup(offsite=True, reason="second")
    (remote / "unrelated.txt").write_text("x")
    out = StringIO()
    call_command("backups", offsite=True, format="json", stdout=out)
    listed = json.loads(out.getvalue())
    assert [b["name"] for b in listed] == [second["name"], first["name"]]
    assert listed[0]["size"] == second["size"]
    assert listed[0]["sha256"] == second["sha256"]
    out = StringIO()
    call_command("backups", offsite=True, stdout=out)
    assert out.getvalue().splitlines()[0] == "Storage 'offsite':"
    assert first["name"] in out.getvalue()


def test_restore_from_storage__lost_volume_brings_the_data_back(remote, backup_dir):
    """The volume is lost: no backup folder, no data; the off-site copy restores both."""
    User.objects.create_user("alice")
    User.objects.create_user("bob")
    name = backup(offsite=True)["name"]
    shutil.rmtree(backup_dir)
    User.objects.all().delete()
    out = StringIO()
    call_command("restore", from_storage=name, interactive=False, no_safety_backup=True, stdout=out)
    assert f"Fetched {name} into {backup_dir}" in out.getvalue()
    assert sorted(User.objects.values_list("username", flat=True)) == ["alice", "bob"]
    assert sha256(backup_dir / name) == sha256(remote / name)
    assert stat.S_IMODE((backup_dir / name).stat().st_mode) == 0o600
    assert not temp_files(backup_dir)  # no temporary files left
    out = StringIO()
    call_command("backups", format="json", stdout=out)
    assert [b["name"] for b in json.loads(out.getvalue())] == [name]


def test_restore_from_storage__damaged_copy_is_refused_database_unchanged(remote, backup_dir):
    User.objects.create_user("alice")
    name = backup(offsite=True)["name"]
    shutil.rmtree(backup_dir)
    User.objects.create_user("bob")
    damaged = bytearray((remote / name).read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    (remote / name).write_bytes(bytes(damaged))
    with pytest.raises(
        CommandError,
        match=rf"^{name} in storage 'offsite' is damaged .*not what its manifest says\); it was "
        "not used and the database was not changed",
    ):
        call_command(
            "restore",
            from_storage=name,
            interactive=False,
            no_safety_backup=True,
            stdout=StringIO(),
        )
    assert sorted(User.objects.values_list("username", flat=True)) == ["alice", "bob"]
    assert not (backup_dir / name).exists()
    assert not (backup_dir / (name + ".manifest.json")).exists()
    assert not temp_files(backup_dir)


def test_restore_from_storage__unknown_name(remote, backup_dir):
    absent = "backup-manual-20200101T000000Z-default.sqlite3.zst"
    with pytest.raises(
        CommandError,
        match=rf"^storage 'offsite' has no backup '{absent}'; list what it holds with "
        r"`manage.py backups --offsite`$",
    ):
        call_command("restore", from_storage=absent, interactive=False, stdout=StringIO())


@pytest.mark.parametrize("name", ["backup-nope", "../../etc/passwd", "/./../x.sqlite3"])
def test_restore_from_storage__a_name_that_is_no_backup_name_is_refused(remote, backup_dir, name):
    with pytest.raises(CommandError, match=r"is not a backup name"):
        call_command("restore", from_storage=name, interactive=False, stdout=StringIO())


def test_fetch_offsite__backup_already_in_the_folder_is_used_as_is(remote, backup_dir):
    name = backup(offsite=True)["name"]
    (remote / name).write_bytes(b"damaged")  # not read: the local file is there
    assert fetch_offsite(name=name, alias="default").file_path == backup_dir / name


def test_storage_failure__local_backup_intact(tmp_path, settings, backup_dir, caplog):
    """A storage that cannot be written fails the copy, never the backup."""
    (tmp_path / "not-a-folder").write_text("")
    settings.STORAGES = {
        **settings.STORAGES,
        "offsite": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "not-a-folder" / "remote")},
        },
    }
    settings.SAFEMIGRATE_STORAGE = "offsite"
    with pytest.raises(
        CommandError,
        match=r"^off-site copy of backup-manual-\S+ to 'offsite' failed: .*Not a directory.*; "
        r"the local backup is kept; check the storage, then copy again \(backup --offsite\)$",
    ):
        backup(offsite=True)
    # The queued copy fails (sync mode re-raises where a worker would record a Failure): logged,
    # and the backup stands.
    queued = backup()
    assert "safemigrate task copy_offsite('default') failed: off-site copy of " in caplog.text
    assert not Task.objects.filter(func="safemigrate.tasks.copy_offsite", success=True).exists()
    manifests = sorted(backup_dir.glob("*.manifest.json"))
    assert len(manifests) == 2
    for path in manifests:
        manifest = read_manifest(path)
        assert manifest.offsite is None
        assert sha256(manifest.file_path) == manifest.sha256
    assert queued["verified"] is True


def test_check__unknown_storage_alias_is_e007(settings):
    settings.SAFEMIGRATE_STORAGE = "nowhere"
    errors = [m for m in check_settings() if m.id == "safemigrate.E007"]
    assert len(errors) == 1
    assert errors[0].level == checks.ERROR
    assert errors[0].msg == "SAFEMIGRATE_STORAGE='nowhere' is not a key of STORAGES"


def test_check__known_storage_alias_is_fine(remote):
    assert not [m for m in check_settings() if m.id == "safemigrate.E007"]


def test_migrate__queues_the_copy_of_the_pre_migration_backup(remote, backup_dir):
    call_command("migrate", "migrapp", "0001", stdout=StringIO(), verbosity=0)
    Task.objects.all().delete()
    try:
        call_command("migrate", "migrapp", stdout=StringIO(), verbosity=0)
        task = Task.objects.get(func="safemigrate.tasks.copy_offsite")
        assert task.success is True
        name = task.args[0]
        assert name.startswith("backup-pre_migrate-")
        assert sha256(remote / name) == sha256(backup_dir / name)
    finally:
        call_command("migrate", "migrapp", stdout=StringIO(), verbosity=0)


def test_backups_offsite__empty_storage(remote):
    out = StringIO()
    call_command("backups", offsite=True, stdout=out)
    assert out.getvalue() == "No backups in storage 'offsite' yet.\n"
