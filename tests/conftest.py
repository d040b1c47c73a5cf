"""Shared fixtures: a backup folder per test, file-backed SQLite databases, admin clients."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REQUIRE_SERVICES = os.environ.get("SAFEMIGRATE_REQUIRE_SERVICES") == "1"


def skip_or_fail(reason: str) -> None:
    """Skip a test that needs a missing service; fail instead when CI requires services."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (SAFEMIGRATE_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@pytest.fixture
def backup_dir(tmp_path: Path, settings) -> Path:
    """A fresh SAFEMIGRATE_BACKUP_DIR for the test; migrate guards the test database into it."""
    directory = tmp_path / "backups"
    settings.SAFEMIGRATE_BACKUP_DIR = str(directory)
    settings.SAFEMIGRATE_GUARD_TEST_DATABASES = True
    return directory


@pytest.fixture
def staff_client(client, django_user_model):
    """A logged-in staff user with view permissions but without restore/download permissions."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_backup", "view_migrationrun"]))
    client.force_login(user)
    return client
