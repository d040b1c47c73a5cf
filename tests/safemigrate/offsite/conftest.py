"""An off-site storage for the tests: a real FileSystemStorage alias in a tmp folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.storage import storages


@pytest.fixture
def remote(tmp_path: Path, settings, backup_dir) -> Path:
    """STORAGES["offsite"] is a folder of its own, and SAFEMIGRATE_STORAGE names it."""
    location = tmp_path / "remote"
    settings.STORAGES = {
        **settings.STORAGES,
        "offsite": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(location), "file_permissions_mode": 0o600},
        },
    }
    settings.SAFEMIGRATE_STORAGE = "offsite"
    # Django's setting_changed receiver resets its cached storages: each test gets its own folder.
    assert storages["offsite"].location == str(location)
    return location
