"""Attacks by staff users with some safemigrate permissions: each grants no more than it says."""

from __future__ import annotations

import sqlite3
from io import BytesIO

import pytest
import zstandard
from django.contrib.auth.models import Permission, User
from django.contrib.sessions.models import Session
from django.urls import reverse

from safemigrate.backup import create_backup
from safemigrate.catalogue import list_backups
from safemigrate.models import Backup
from safemigrate.rotation import rotate_backups

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff(client, django_user_model):
    """A logged-in staff user; ``grant(*codenames)`` gives it permissions."""
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(user)

    def grant(*codenames: str):
        user.user_permissions.add(*Permission.objects.filter(codename__in=["view_backup", *codenames]))
        return client

    return grant


def test_download__the_backup_holds_no_session_to_replay(staff, admin_client, backup_dir, tmp_path):
    """The review's exploit: view+download, read django_session, replay the superuser's login."""
    admin_client.get(reverse("admin:index"))  # the superuser is logged in: a session row
    keys = list(Session.objects.values_list("session_key", flat=True))
    assert keys
    backup = Backup.objects.get(name=create_backup(alias="default").manifest.name)
    response = staff("download_backup").get(reverse("admin:safemigrate_backup_download", args=[backup.pk]))
    assert response.status_code == 200
    stored = b"".join(response.streaming_content)
    raw = zstandard.ZstdDecompressor().stream_reader(BytesIO(stored)).read()
    for key in keys:
        assert key.encode() not in raw
    copy = tmp_path / "downloaded.sqlite3"
    copy.write_bytes(raw)
    with sqlite3.connect(copy) as conn:
        assert conn.execute("SELECT COUNT(*) FROM django_session").fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM auth_user").fetchone()[0] >= 1  # the data is there
    assert Session.objects.filter(session_key__in=keys).count() == len(keys)  # live ones untouched


@pytest.mark.parametrize("method", ["get", "post"])
def test_restore__the_permission_alone_is_not_enough(staff, backup_dir, method):
    """A staff user with "restore" restores last night's backup in which they were superuser."""
    staff_user = User.objects.get(username="staff")
    staff_user.is_superuser = True
    staff_user.save()
    old = Backup.objects.get(name=create_backup(alias="default").manifest.name)
    staff_user.is_superuser = False
    staff_user.save()
    client = staff("restore_backup")
    response = getattr(client, method)(reverse("admin:safemigrate_backup_restore", args=[old.pk]))
    assert response.status_code == 403
    assert User.objects.get(username="staff").is_superuser is False


def test_back_up_now__repeated_clicks_are_rate_limited(staff, backup_dir):
    client = staff("add_backup")
    for _ in range(5):
        client.post(reverse("admin:safemigrate_backup_backup_now"))
    assert [m.reason for m in list_backups(alias="default")] == ["admin"]
    response = client.post(reverse("admin:safemigrate_backup_backup_now"), follow=True)
    assert "SAFEMIGRATE_ADMIN_BACKUP_INTERVAL" in response.content.decode()


def test_back_up_now__refused_below_the_free_space_reserve(staff, backup_dir, settings):
    settings.SAFEMIGRATE_FREE_SPACE_RESERVE = 2**62
    response = staff("add_backup").post(reverse("admin:safemigrate_backup_backup_now"), follow=True)
    assert "SAFEMIGRATE_FREE_SPACE_RESERVE" in response.content.decode()
    assert list_backups(alias="default") == []


def test_rotation__admin_backups_never_evict_pre_migrate_or_scheduled(backup_dir, settings):
    """Even with the rate limit lifted, admin clicks only ever push out admin backups."""
    keep = [create_backup(alias="default", reason=r).manifest.name for r in ("pre_migrate", "scheduled")]
    admin = [create_backup(alias="default", reason="admin").manifest.name for _ in range(4)]
    result = rotate_backups(alias="default", keep=2)
    assert sorted(result.deleted) == sorted(admin[:2])
    assert {m.name for m in list_backups(alias="default")} == {*keep, *admin[2:]}


def test_download__a_symlink_in_place_of_the_file_is_not_followed(staff, backup_dir, tmp_path):
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret")
    backup = Backup.objects.get(name=create_backup(alias="default").manifest.name)
    (backup_dir / backup.name).unlink()
    (backup_dir / backup.name).symlink_to(secret)
    response = staff("download_backup").get(reverse("admin:safemigrate_backup_download", args=[backup.pk]))
    assert response.status_code == 302
    assert b"secret" not in b"".join(getattr(response, "streaming_content", [response.content]))


def test_download__a_catalogue_path_outside_the_folder_is_refused(staff, backup_dir, tmp_path):
    secret = tmp_path / "backup-manual-20200101T000000Z-default.sqlite3"
    secret.write_text("secret")
    backup = Backup.objects.get(name=create_backup(alias="default").manifest.name)
    Backup.objects.filter(pk=backup.pk).update(path=str(secret))
    response = staff("download_backup").get(reverse("admin:safemigrate_backup_download", args=[backup.pk]))
    assert response.status_code == 302
