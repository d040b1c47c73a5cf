"""The backup catalogue in the admin: list, Back up now, Download, Verify, Pin, Delete."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.urls import reverse

from safemigrate import catalogue
from safemigrate.manifest import read_manifest, update_manifest
from safemigrate.models import Backup
from safemigrate.rotation import rotate_backups

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "admin:safemigrate_backup_changelist"


def url(name: str, backup: Backup) -> str:
    return reverse(f"admin:safemigrate_backup_{name}", args=[backup.pk])


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_changelist__lists_backups_with_columns_and_chart(admin_client, backup):
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    html = response.content.decode()
    assert backup.created.strftime("%Y") in html
    assert ">test<" in html  # the reason column
    assert "zstd" in html
    assert "migrapp.0002_item_note<br>" in html  # the project's apps' latest migrations
    assert 'class="safemigrate-ok">yes' in html  # verified and on disk
    assert "<svg" in html
    assert 'class="bar-verified"' in html
    assert "Back up now" in html


def test_changelist__flags_a_backup_whose_file_is_missing(admin_client, backup):
    """A record whose file is gone is shown and flagged, not hidden; Restore/Download disappear."""
    Path(backup.path).unlink()
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    html = response.content.decode()
    assert "MISSING" in html
    assert 'class="bar-missing"' in html
    filtered = admin_client.get(reverse(CHANGELIST), {"state": "missing"})
    assert list(filtered.context["cl"].result_list) == [backup]
    change = admin_client.get(reverse("admin:safemigrate_backup_change", args=[backup.pk]))
    assert change.status_code == 200
    assert url("restore", backup) not in change.content.decode()
    assert url("download", backup) not in change.content.decode()


def test_changelist__verification_filter(admin_client, make_backup):
    first, second = make_backup(), make_backup()
    manifest = update_manifest(read_manifest(first.manifest_path), verified=False)
    catalogue.record(manifest)
    response = admin_client.get(reverse(CHANGELIST), {"verification": "none"})
    assert list(response.context["cl"].result_list) == [first]
    response = admin_client.get(reverse(CHANGELIST), {"verification": "ok"})
    assert list(response.context["cl"].result_list) == [second]


def test_backup_now__post_makes_a_verified_backup(admin_client, backup_dir):
    response = admin_client.post(reverse("admin:safemigrate_backup_backup_now"), follow=True)
    assert response.redirect_chain == [(reverse(CHANGELIST), 302)]
    files = sorted(backup_dir.glob("backup-admin-*-default.sqlite3.zst"))
    assert len(files) == 1
    row = Backup.objects.get()
    assert row.verified
    assert row.reason == "admin"
    assert row.path == str(files[0])
    assert any(m.startswith(f"Backed up database 'default' to {row.name} (") for m in messages_of(response))


def test_backup_now__failure_is_a_message_not_a_500(admin_client, tmp_path, settings):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings.SAFEMIGRATE_BACKUP_DIR = str(blocker / "backups")
    response = admin_client.post(reverse("admin:safemigrate_backup_backup_now"), follow=True)
    assert response.status_code == 200
    [message] = messages_of(response)
    assert message.startswith(f"Backup failed: cannot create the backup folder {blocker / 'backups'}")
    assert not Backup.objects.exists()


def test_download__streams_the_exact_file_and_is_not_cacheable(admin_client, backup):
    response = admin_client.get(url("download", backup))
    assert response.status_code == 200
    assert response.streaming
    body = b"".join(response.streaming_content)
    assert hashlib.sha256(body).hexdigest() == read_manifest(backup.manifest_path).sha256
    assert body == Path(backup.path).read_bytes()
    assert response["Content-Disposition"] == f'attachment; filename="{Path(backup.path).name}"'
    assert response["Content-Type"] == "application/octet-stream"
    cache_control = {part.strip() for part in response["Cache-Control"].split(",")}
    assert {"no-store", "private", "no-cache"} <= cache_control


def test_download__missing_file_is_a_message(admin_client, backup):
    Path(backup.path).unlink()
    response = admin_client.get(url("download", backup), follow=True)
    assert response.redirect_chain[-1][0] == url("change", backup)
    assert "Cannot download " in messages_of(response)[0]
    assert ": the file " in messages_of(response)[0]


def test_verify__marks_the_backup_verified(admin_client, backup):
    catalogue.record(update_manifest(read_manifest(backup.manifest_path), verified=False, verified_at=None))
    response = admin_client.post(url("verify", backup), follow=True)
    assert response.redirect_chain == [(url("change", backup), 302)]
    assert messages_of(response) == [
        f"Verified {backup.name}: checksum, a restore into a scratch copy and the integrity check passed."
    ]
    manifest = read_manifest(backup.manifest_path)
    assert manifest.verified
    assert manifest.verified_at
    backup.refresh_from_db()
    assert backup.verified
    assert backup.verified_at is not None


def test_verify__damaged_file_fails_with_a_message(admin_client, backup):
    data = bytearray(Path(backup.path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(backup.path).write_bytes(bytes(data))
    response = admin_client.post(url("verify", backup), follow=True)
    assert response.status_code == 200
    [message] = messages_of(response)
    assert message.startswith(f"Verification of {backup.name} failed: ")


def test_pin__pinned_backup_survives_rotation_and_unpin_releases_it(admin_client, make_backup):
    oldest = make_backup()
    response = admin_client.post(url("pin", oldest), {"pinned": "1"}, follow=True)
    assert messages_of(response) == [f"Pinned {oldest.name}: rotation will never delete it."]
    assert read_manifest(oldest.manifest_path).pinned
    oldest.refresh_from_db()
    assert oldest.pinned
    make_backup()
    make_backup()
    result = rotate_backups(alias="default", keep=1)
    assert oldest.name in result.kept
    assert Path(oldest.path).is_file()

    admin_client.post(url("pin", oldest), {"pinned": "0"})
    assert not read_manifest(oldest.manifest_path).pinned
    result = rotate_backups(alias="default", keep=1)
    assert oldest.name in result.deleted
    assert not Path(oldest.path).exists()


def test_delete__removes_file_manifest_and_record(admin_client, backup):
    confirm = admin_client.get(reverse("admin:safemigrate_backup_delete", args=[backup.pk]))
    assert confirm.status_code == 200
    assert Path(backup.path).is_file()  # GET only asks
    response = admin_client.post(
        reverse("admin:safemigrate_backup_delete", args=[backup.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Path(backup.path).exists()
    assert not backup.manifest_path.exists()
    assert not Backup.objects.filter(pk=backup.pk).exists()


def test_delete__bulk_action_removes_files(admin_client, make_backup):
    backups = [make_backup(), make_backup()]
    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": "delete_selected", "_selected_action": [b.pk for b in backups], "post": "yes"},
    )
    assert response.status_code == 302
    for b in backups:
        assert not Path(b.path).exists()
        assert not b.manifest_path.exists()
    assert not Backup.objects.exists()


def test_delete__record_whose_manifest_is_gone(admin_client, backup):
    backup.manifest_path.unlink()
    admin_client.post(reverse("admin:safemigrate_backup_delete", args=[backup.pk]), {"post": "yes"})
    assert not Path(backup.path).exists()
    assert not Backup.objects.exists()


def test_change_form__shows_the_buttons_to_a_superuser(admin_client, backup):
    response = admin_client.get(url("change", backup))
    html = response.content.decode()
    for name in ("restore", "verify", "download", "pin"):
        assert url(name, backup) in html
    assert 'name="_save"' not in html  # read-only catalogue


def test_change_form__hides_the_buttons_without_permission(staff_client, backup):
    response = staff_client.get(url("change", backup))
    assert response.status_code == 200
    html = response.content.decode()
    for name in ("restore", "verify", "download", "pin"):
        assert url(name, backup) not in html
    assert "Back up now" not in staff_client.get(reverse(CHANGELIST)).content.decode()
