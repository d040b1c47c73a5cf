"""safemigrate.followup: every door gets the same follow-up work (here: the off-site copy)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings
from django_q.models import Task

from safemigrate.backup import create_backup
from safemigrate.manifest import read_manifest
from safemigrate.restore import restore_backup

pytestmark = pytest.mark.django_db(transaction=True)


def test_admin_backup_now__is_copied_offsite(remote, backup_dir, admin_client):
    response = admin_client.post("/admin/safemigrate/backup/backup-now/", {"database": "default"})
    assert response.status_code == 302
    [made] = list(backup_dir.glob("backup-admin-*.zst"))
    task = Task.objects.get(func="safemigrate.tasks.copy_offsite")
    assert task.success is True, task.result
    assert task.args == (made.name, "default")
    assert (remote / made.name).read_bytes() == made.read_bytes()
    assert read_manifest(made.with_name(made.name + ".manifest.json")).offsite["storage"] == "offsite"


def test_restore__copies_the_safety_backup_offsite_after_the_restore(remote, backup_dir):
    good = create_backup(alias="default").manifest
    Task.objects.all().delete()
    result = restore_backup(backup=good, alias="default", safety_backup=True)
    safety = result.safety_backup.manifest.name
    assert (remote / safety).is_file()
    # Queued after the swap, so the (restored) task table still holds it.
    assert Task.objects.get(func="safemigrate.tasks.copy_offsite").args == (safety, "default")


def test_followup__runs_in_process_without_django_q(remote, backup_dir, settings):
    """An installation without django-q2 still gets its follow-up, run right away."""
    apps = [app for app in settings.INSTALLED_APPS if app != "django_q"]
    with override_settings(INSTALLED_APPS=apps):
        call_command("backup", stdout=StringIO(), stderr=StringIO())
    [made] = list(backup_dir.glob("backup-manual-*.zst"))
    assert (remote / made.name).read_bytes() == made.read_bytes()
    assert not Task.objects.exists()
