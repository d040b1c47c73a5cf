"""Rotation keeps the newest N, every pinned backup and the newest verified one."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from safemigrate.catalogue import list_backups
from safemigrate.manifest import update_manifest
from safemigrate.rotation import rotate_backups

pytestmark = pytest.mark.django_db(transaction=True)


def make_backups(n: int) -> list[str]:
    names = []
    for i in range(n):
        out = StringIO()
        call_command("backup", reason=f"r{i}", format="json", stdout=out, stderr=StringIO())
        names.append(json.loads(out.getvalue())["name"])
    return names


def test_cleanupbackups__keeps_newest_and_pinned(backup_dir):
    names = make_backups(5)  # oldest first
    oldest = next(m for m in list_backups(alias="default") if m.name == names[0])
    update_manifest(oldest, pinned=True)
    out = StringIO()
    call_command("cleanupbackups", keep=2, stdout=out)
    left = {m.name for m in list_backups(alias="default")}
    assert left == {names[0], names[3], names[4]}
    assert "Deleted 2 backup(s); 3 kept." in out.getvalue()
    for gone in (names[1], names[2]):
        assert not (backup_dir / gone).exists()
        assert not (backup_dir / f"{gone}.manifest.json").exists()


def test_cleanupbackups__dry_run_deletes_nothing(backup_dir):
    make_backups(3)
    out = StringIO()
    call_command("cleanupbackups", keep=1, dry_run=True, format="json", stdout=out)
    assert len(json.loads(out.getvalue())["deleted"]) == 2
    assert len(list_backups(alias="default")) == 3


def test_rotation__never_deletes_newest_verified(backup_dir):
    names = make_backups(3)
    for manifest in list_backups(alias="default"):
        if manifest.name != names[0]:
            update_manifest(manifest, verified=False)
    result = rotate_backups(alias="default", keep=1)
    assert names[0] not in result.deleted
    assert set(result.deleted) == {names[1]}


def test_cleanupbackups__bad_keep(backup_dir):
    with pytest.raises(CommandError, match="--keep must be at least 1"):
        call_command("cleanupbackups", keep=0)


def test_safemigrate__queues_rotation_after_success(backup_dir, settings):
    settings.SAFEMIGRATE_KEEP = 1
    make_backups(3)
    call_command("migrate", "migrapp", "0001", stdout=StringIO())
    try:
        # The task ran (sync broker in tests): one backup kept per reason class.
        assert sorted(m.reason for m in list_backups(alias="default")) == ["pre_migrate", "r2"]
    finally:
        call_command("migrate", "migrapp", stdout=StringIO(), verbosity=0)


def test_rotation__standalone_json_dumps_are_rotated_too(backup_dir):
    from safemigrate.jsondump import create_json_dump

    dumps = [create_json_dump(alias="default").path for _ in range(3)]  # oldest first
    result = rotate_backups(alias="default", keep=1)
    assert sorted(result.deleted) == sorted(p.name for p in dumps[:2])
    assert dumps[2].exists()
    for gone in dumps[:2]:
        assert not gone.exists()
        assert not gone.with_name(gone.name + ".dump-manifest.json").exists()
