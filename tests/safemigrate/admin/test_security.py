"""Admin security: permissions, anonymous users, POST-only state changes, 404s."""

from __future__ import annotations

import pytest
from django.urls import reverse

from safemigrate.manifest import read_manifest
from safemigrate.models import Backup
from tests.migrapp.models import Item
from tests.safemigrate.helpers import files_in

pytestmark = pytest.mark.django_db(transaction=True)


def url(name: str, pk: int) -> str:
    return reverse(f"admin:safemigrate_backup_{name}", args=[pk])


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("get", "restore"),
        ("post", "restore"),
        ("get", "download"),
        ("post", "verify"),
        ("post", "pin"),
    ],
)
def test_staff_without_permission__gets_403(staff_client, backup, method, name):
    Item.objects.create(name="kept")
    before = read_manifest(backup.manifest_path)
    response = getattr(staff_client, method)(url(name, backup.pk), {"pinned": "1"})
    assert response.status_code == 403
    assert Item.objects.filter(name="kept").exists()
    assert read_manifest(backup.manifest_path) == before


def test_staff_without_permission__cannot_back_up_now(staff_client, backup_dir):
    response = staff_client.post(reverse("admin:safemigrate_backup_backup_now"))
    assert response.status_code == 403
    assert not backup_dir.exists() or not files_in(backup_dir)


def test_staff_with_permission__can_download_and_only_a_superuser_restores(
    staff_client, backup, django_user_model
):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.get(username="staff")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["restore_backup", "download_backup"]))
    assert staff_client.get(url("download", backup.pk)).status_code == 200
    assert staff_client.get(url("restore", backup.pk)).status_code == 403
    user.is_superuser = True
    user.save()
    assert staff_client.get(url("restore", backup.pk)).status_code == 200


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("get", "restore"),
        ("post", "restore"),
        ("get", "download"),
        ("post", "verify"),
        ("post", "pin"),
    ],
)
def test_anonymous__redirected_to_login(client, backup, method, name):
    target = url(name, backup.pk)
    response = getattr(client, method)(target)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next={target}"


def test_anonymous__back_up_now_redirects_to_login(client, backup_dir):
    response = client.post(reverse("admin:safemigrate_backup_backup_now"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert not backup_dir.exists() or not files_in(backup_dir)


def test_get__never_changes_state(admin_client, backup, backup_dir):
    """GET on every state-changing URL is refused (405) or only shows a page; nothing changes."""
    Item.objects.create(name="after the backup")
    files = files_in(backup_dir)
    manifest = read_manifest(backup.manifest_path)
    assert admin_client.get(reverse("admin:safemigrate_backup_backup_now")).status_code == 405
    assert admin_client.get(url("verify", backup.pk)).status_code == 405
    assert admin_client.get(url("pin", backup.pk), {"pinned": "1"}).status_code == 405
    assert admin_client.get(url("restore", backup.pk)).status_code == 200
    assert admin_client.get(reverse("admin:safemigrate_backup_delete", args=[backup.pk])).status_code == 200
    assert files_in(backup_dir) == files
    assert read_manifest(backup.manifest_path) == manifest
    assert Item.objects.filter(name="after the backup").exists()
    assert Backup.objects.filter(pk=backup.pk, pinned=False).exists()


def test_restore_post__requires_csrf(backup, django_user_model):
    from django.test import Client

    django_user_model.objects.create_superuser("root", password="pw")
    client = Client(enforce_csrf_checks=True)
    client.login(username="root", password="pw")
    Item.objects.create(name="after the backup")
    response = client.post(url("restore", backup.pk))
    assert response.status_code == 403
    assert Item.objects.filter(name="after the backup").exists()


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("get", "restore"),
        ("post", "restore"),
        ("get", "download"),
        ("post", "verify"),
        ("post", "pin"),
    ],
)
def test_missing_backup_id__404(admin_client, backup_dir, method, name):
    assert getattr(admin_client, method)(url(name, 999999)).status_code == 404
