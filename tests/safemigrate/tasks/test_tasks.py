"""The task functions called directly, as a django-q2 worker calls them."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
from django_q.models import Task
from django_q.tasks import async_task

from safemigrate import tasks
from safemigrate.exceptions import LockTimeout, SafeMigrateError
from safemigrate.manifest import list_manifests, read_manifest, update_manifest


def names_on_disk(directory) -> list[str]:
    return sorted(m.name for m in list_manifests(directory))


def unverify(result):
    """Mark a backup as never verified (as an external or rescanned one is)."""
    return update_manifest(result.manifest, verified=False, verified_at=None)


@pytest.mark.django_db(transaction=True)
def test_rotate_backups__deletes_beyond_keep(make_backups, backup_dir, settings):
    settings.SAFEMIGRATE_KEEP = 2
    made = make_backups(4)
    result = tasks.rotate_backups("default")
    assert result == {
        "alias": "default",
        "deleted": [made[1].manifest.name, made[0].manifest.name],
        "kept": 2,
    }
    assert json.loads(json.dumps(result)) == result
    assert names_on_disk(backup_dir) == sorted(m.manifest.name for m in made[2:])
    assert not made[0].path.exists()


@pytest.mark.django_db(transaction=True)
def test_rotate_backups__waits_for_the_lock_and_deletes_nothing_while_held(
    make_backups, backup_dir, settings, lock_held_elsewhere, caplog
):
    """Another process holds the lock (a restore, a migration, another worker): no file goes."""
    settings.SAFEMIGRATE_KEEP = 1
    made = make_backups(3)
    held = "another safemigrate run holds the lock"
    with lock_held_elsewhere(), pytest.raises(LockTimeout, match=held):
        tasks.rotate_backups("default", lock_timeout=0.5)
    assert names_on_disk(backup_dir) == sorted(m.manifest.name for m in made)
    assert f"safemigrate task rotate_backups('default') failed: {held}" in caplog.text
    assert tasks.rotate_backups("default", lock_timeout=0.5)["deleted"] == [
        made[1].manifest.name,
        made[0].manifest.name,
    ]


@pytest.mark.django_db(transaction=True)
def test_scheduled_backup__makes_a_verified_backup(backup_dir):
    result = tasks.scheduled_backup("default")
    assert result["name"].startswith("backup-scheduled-")
    assert result["name"].endswith("-default.sqlite3.zst")
    manifest = read_manifest(backup_dir / f"{result['name']}.manifest.json")
    assert manifest.verified
    assert manifest.reason == "scheduled"
    assert result["sha256"] == manifest.sha256
    assert result["size"] == manifest.size
    assert json.loads(json.dumps(result)) == result


@pytest.mark.django_db(transaction=True)
def test_scheduled_backup__queues_rotation(make_backups, backup_dir, settings):
    """Scheduled backups never pile up between migrations (sync django-q2 in tests)."""
    settings.SAFEMIGRATE_KEEP = 2
    made = make_backups(2, reason="scheduled")  # rotation keeps SAFEMIGRATE_KEEP per reason class
    result = tasks.scheduled_backup("default")
    # Each scheduled backup (make_backups' too) is followed by a rotation; the last one counts.
    rotation = Task.objects.filter(func="safemigrate.tasks.rotate_backups").latest("started")
    assert rotation.success is True
    assert rotation.result["deleted"] == [made[0].manifest.name]
    assert names_on_disk(backup_dir) == sorted([made[1].manifest.name, result["name"]])


@pytest.mark.django_db(transaction=True)
def test_scheduled_backup__skips_with_a_logged_reason_while_a_migration_holds_the_lock(
    backup_dir, lock_held_elsewhere, caplog
):
    caplog.set_level(logging.WARNING, logger="safemigrate")
    with lock_held_elsewhere():
        result = tasks.scheduled_backup("default", lock_timeout=0.3)
    assert result["alias"] == "default"
    assert result["skipped"].startswith(
        "scheduled backup of 'default' skipped: another safemigrate run holds the lock on "
    )
    assert "waited 0s" in result["skipped"]
    assert result["skipped"] in caplog.text
    assert not list(backup_dir.glob("backup-scheduled-*"))
    assert not Task.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_verify_backups__verifies_the_newest_unverified(make_backups, backup_dir):
    made = [unverify(r) for r in make_backups(3)]
    result = tasks.verify_backups("default", limit=2)
    assert result == {
        "alias": "default",
        "verified": [made[2].name, made[1].name],
        "gone": [],
        "problems": [],
    }
    on_disk = {m.name: m.verified for m in list_manifests(backup_dir)}
    assert on_disk == {made[0].name: False, made[1].name: True, made[2].name: True}


@pytest.mark.django_db(transaction=True)
def test_verify_backups__nothing_unverified_is_a_no_op(make_backups):
    make_backups(1)
    assert tasks.verify_backups("default") == {"alias": "default", "verified": [], "gone": [], "problems": []}


@pytest.mark.django_db(transaction=True)
def test_verify_backups__backup_rotated_meanwhile_is_gone_not_failed(make_backups, monkeypatch):
    """Rotation (another worker) deletes a backup while this one verifies the list."""
    from safemigrate import restore
    from safemigrate.rotation import delete_backup_files

    older, newer = (unverify(r) for r in make_backups(2))
    real_verify = restore.verify_backup

    def rotate_then_verify(*, backup, alias):
        if backup.name == older.name:
            delete_backup_files(backup)
        return real_verify(backup=backup, alias=alias)

    monkeypatch.setattr(restore, "verify_backup", rotate_then_verify)
    result = tasks.verify_backups("default")
    assert result == {"alias": "default", "verified": [newer.name], "gone": [older.name], "problems": []}


@pytest.mark.django_db(transaction=True)
def test_verify_backups__damaged_backup_fails_the_task_naming_it(make_backups, caplog):
    good, bad = (unverify(r) for r in make_backups(2))
    data = bytearray(bad.file_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.file_path.write_bytes(bytes(data))
    with pytest.raises(SafeMigrateError) as info:
        tasks.verify_backups("default")
    message = str(info.value)
    assert message.startswith(f"1 of 2 backup(s) of 'default' failed verification: {bad.name} (")
    assert message.endswith("Do not restore them; take a new backup (manage.py backup)")
    assert f"backup {bad.name} failed verification" in caplog.text
    assert "safemigrate task verify_backups('default') failed: 1 of 2" in caplog.text
    assert read_manifest(good.path).verified


@pytest.mark.django_db(transaction=True)
def test_task_success__result_stored_by_django_q(make_backups, settings):
    """Through django-q2 (sync in tests; failures are covered by the qcluster test)."""
    settings.SAFEMIGRATE_KEEP = 1
    made = make_backups(2)
    task_id = async_task("safemigrate.tasks.rotate_backups", "default", group="safemigrate")
    task = Task.objects.get(id=task_id)
    assert task.success is True
    assert task.result == {"alias": "default", "deleted": [made[0].manifest.name], "kept": 1}


@pytest.mark.django_db(transaction=True)
def test_dump_json__writes_a_verified_dump(backup_dir):
    result = tasks.dump_json("default")
    path = Path(result["path"])
    assert path.parent == backup_dir
    assert path.name.startswith("backup-json-")
    assert result["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert result["size"] == path.stat().st_size
    assert result["models"]["migrapp.item"] == 0
    assert json.loads(json.dumps(result)) == result
