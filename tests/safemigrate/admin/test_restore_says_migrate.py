"""The admin's restore of a backup older than the code says to run migrate."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def older_backup(make_backup):
    """A backup from before migrapp.0002, which is applied now (and again after the test)."""
    call_command("migrate", "migrapp", "0001", stdout=StringIO(), verbosity=0)
    backup = make_backup()
    call_command("migrate", "migrapp", stdout=StringIO(), verbosity=0)
    yield backup
    call_command("migrate", "migrapp", stdout=StringIO(), verbosity=0)


def test_restore_post__an_older_backup_says_run_migrate(admin_client, older_backup):
    backup = older_backup

    response = admin_client.post(reverse("admin:safemigrate_backup_restore", args=[backup.pk]))

    assert response.status_code == 302
    page = admin_client.get(reverse("admin:safemigrate_backup_changelist"))
    [message] = list(page.context["messages"])
    assert message.level_tag == "warning"
    assert "It lacks 1 migration(s) of this code: run manage.py migrate now." in str(message)
