"""The log of migration runs: a read-only list with plan, status, duration, backup used, error."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from safemigrate.catalogue import db_datetime
from safemigrate.models import MigrationRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def rolled_back(db) -> MigrationRun:
    return MigrationRun.objects.create(
        started=db_datetime(datetime(2026, 1, 2, 3, 4, tzinfo=UTC)),
        duration=2.5,
        status=MigrationRun.Status.ROLLED_BACK,
        plan=["migrapp.0002_item_note"],
        backup_name="backup-pre_migrate-20260102T030400Z-default.sqlite3.zst",
        error="migrapp.0002_item_note: deliberate failure",
    )


def test_changelist__shows_plan_status_duration_backup_and_error(admin_client, rolled_back):
    response = admin_client.get(reverse("admin:safemigrate_migrationrun_changelist"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "rolled back" in html
    assert "migrapp.0002_item_note" in html
    assert "2.50 s" in html
    assert "backup-pre_migrate-20260102T030400Z-default.sqlite3.zst" in html
    assert "deliberate failure" in html


def test_changelist__is_read_only(admin_client, rolled_back):
    assert admin_client.get(reverse("admin:safemigrate_migrationrun_add")).status_code == 403
    change = admin_client.get(reverse("admin:safemigrate_migrationrun_change", args=[rolled_back.pk]))
    assert change.status_code == 200
    assert 'name="_save"' not in change.content.decode()
    delete = reverse("admin:safemigrate_migrationrun_delete", args=[rolled_back.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert MigrationRun.objects.filter(pk=rolled_back.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_changelist__links_the_backup_used(admin_client, backup):
    MigrationRun.objects.create(
        started=db_datetime(datetime.now(UTC)), status="applied", backup=backup, backup_name=backup.name
    )
    html = admin_client.get(reverse("admin:safemigrate_migrationrun_changelist")).content.decode()
    link = reverse("admin:safemigrate_backup_change", args=[backup.pk])
    assert f'<a href="{link}">{backup.name}</a>' in html
