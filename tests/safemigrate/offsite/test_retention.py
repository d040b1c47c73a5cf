"""Off-site copies follow the local retention: a rotated backup's copy goes with it; the admin and
the health endpoint show each backup's off-site state."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from safemigrate.catalogue import list_backups
from safemigrate.rotation import rotate_backups

pytestmark = pytest.mark.django_db(transaction=True)


def backup(**options) -> str:
    out = StringIO()
    call_command("backup", format="json", stdout=out, stderr=StringIO(), **options)
    return json.loads(out.getvalue())["name"]


def objects(remote: Path) -> set[str]:
    return {p.name for p in remote.iterdir()} if remote.exists() else set()


def storage_down(settings) -> dict:
    """STORAGES without the "offsite" alias (as if its bucket were unreachable); returns the old."""
    saved = settings.STORAGES
    settings.STORAGES = {k: v for k, v in saved.items() if k != "offsite"}
    return saved


def test_rotation__deletes_the_offsite_copy_with_the_local_backup(remote, backup_dir):
    names = [backup(with_json=True, offsite=True) for _ in range(3)]  # file, dump and their manifests
    first = objects(remote)
    assert len(first) == 12
    out = StringIO()
    call_command("cleanupbackups", keep=2, dry_run=True, stdout=out)
    assert f"delete  manual  {names[0]}  class manual, beyond the newest 2 (and its off-site copy)" in (
        out.getvalue().splitlines()
    )
    assert objects(remote) == first  # a dry run
    out = StringIO()
    call_command("cleanupbackups", keep=2, stdout=out)
    assert f"Deleted {names[0]} and its off-site copy (class manual, beyond the newest 2)" in out.getvalue()
    left = objects(remote)
    assert not [o for o in left if o.startswith(names[0].split(".")[0])]  # file, manifest, dump, its manifest
    assert {names[1], names[2], names[1] + ".manifest.json", names[2] + ".manifest.json"} <= left
    assert len(left) == len(first) - 4


def test_rotation__an_unreachable_storage_is_retried_by_the_next_rotation(
    remote, backup_dir, settings, caplog
):
    old, new = backup(), backup()
    saved = storage_down(settings)
    result = rotate_backups(alias="default", keep=1)
    assert result.deleted == [old]
    assert not (backup_dir / old).exists()  # the local disk is freed all the same
    [failure] = result.offsite_failed
    assert failure.startswith(f"{old}: storage 'offsite' (SAFEMIGRATE_STORAGE) cannot be opened")
    assert "could not delete the off-site copy of" in caplog.text
    assert old in objects(remote)
    settings.STORAGES = saved
    again = rotate_backups(alias="default", keep=1)
    assert again.deleted == []
    assert again.offsite_deleted == [old]
    assert objects(remote) == {new, new + ".manifest.json"}
    assert rotate_backups(alias="default", keep=1).offsite_deleted == []  # done once


def test_rotation__never_deletes_another_backup_of_the_same_name(remote, backup_dir):
    old, _ = backup(), backup()
    foreign = remote / (old + ".manifest.json")
    data = json.loads(foreign.read_text())
    foreign.write_text(json.dumps({**data, "sha256": "0" * 64}))
    result = rotate_backups(alias="default", keep=1)
    assert result.offsite_deleted == []
    assert result.offsite_failed == [
        f"{old}: storage 'offsite' holds a different {old}; it was left as it is"
    ]
    assert {old, old + ".manifest.json"} <= objects(remote)
    assert rotate_backups(alias="default", keep=1).offsite_failed == []  # not retried forever


def test_offsite_state__admin_column_and_health_warning(remote, backup_dir, settings, admin_client, client):
    """not copied / failed / copied in the admin; a failed copy is a warning (W018), still 200."""
    settings.SAFEMIGRATE_STORAGE = None
    not_copied = backup()
    settings.SAFEMIGRATE_STORAGE = "offsite"
    saved = storage_down(settings)
    failed = backup()  # the queued copy fails: the backup stands
    settings.STORAGES = saved
    copied = backup()
    page = admin_client.get("/admin/safemigrate/backup/").content.decode()
    states = [line for line in page.splitlines() if "field-offsite_display" in line]
    assert len(states) == 3
    assert ">copied<" in states[0]  # newest first
    assert 'class="safemigrate-bad">failed<' in states[1]
    assert ">not copied<" in states[2]
    response = client.get("/healthz/backups")
    assert response.status_code == 200
    [db] = response.json()["databases"]
    assert db["healthy"] is True
    assert db["problems"] == []
    assert db["warnings"] == ["safemigrate.W018"]
    # Rotation deletes the backup whose copy failed: the warning goes with it.
    assert set(rotate_backups(alias="default", keep=1).deleted) == {not_copied, failed}
    assert [m.name for m in list_backups(alias="default")] == [copied]
    assert client.get("/healthz/backups").json()["databases"][0]["warnings"] == []
