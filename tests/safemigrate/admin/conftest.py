"""Fixtures for the admin tests: a verified backup in a tmp folder, and a manifest to inspect."""

from __future__ import annotations

import pytest

from safemigrate.backup import create_backup
from safemigrate.models import Backup


@pytest.fixture
def make_backup(backup_dir):
    """Make a real verified backup of the test database and return its catalogue row."""

    def make(reason: str = "test") -> Backup:
        result = create_backup(alias="default", reason=reason)
        return Backup.objects.get(name=result.manifest.name)

    return make


@pytest.fixture
def backup(make_backup) -> Backup:
    return make_backup()
