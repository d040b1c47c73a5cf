"""System checks of the monitors (health.py) and the notification settings."""

from __future__ import annotations

import re
from pathlib import Path

from django.core import checks

import safemigrate


def test_checks__notification_settings_warn_and_never_block(settings, tmp_path):
    """Bad notification settings are Warnings: they must never stop a migration."""
    settings.SAFEMIGRATE_BACKUP_DIR = str(tmp_path / "b")
    settings.SAFEMIGRATE_NOTIFY_LEVEL = "loud"
    settings.SAFEMIGRATE_NOTIFY_WEBHOOKS = ["ftp://example.com/x", "https://ok.example.com/hook"]
    settings.SAFEMIGRATE_NOTIFY_MAIL_ADMINS = True
    settings.ADMINS = []
    found = {m.id: m for m in checks.run_checks() if m.id and m.id.startswith("safemigrate.")}
    assert {"safemigrate.W014", "safemigrate.W015", "safemigrate.W016"} <= set(found)
    assert found["safemigrate.W016"].msg == "SAFEMIGRATE_NOTIFY_WEBHOOKS entry 1 is not an http(s) URL"
    assert not [m for m in found.values() if m.is_serious()]


def test_checks__health_monitor_ids_unique_and_documented():
    """The monitors (health.py, shown through check_health) may state one ID in several branches,
    but never one that checks.py uses for something else."""
    source = (Path(safemigrate.__file__).parent / "checks.py").read_text()
    defined = set(re.findall(r'id="(safemigrate\.[EW]\d{3})"', source))
    health = (Path(safemigrate.__file__).parent / "health.py").read_text()
    monitors = set(re.findall(r'id="(safemigrate\.W\d{3})"', health))
    assert not monitors & defined, monitors & defined
    assert monitors >= {"safemigrate.W001", "safemigrate.W010", "safemigrate.W013"}
    readme = (Path(safemigrate.__file__).parent.parent / "README.md").read_text()
    for check_id in sorted(monitors):
        assert f"`{check_id}`" in readme, f"{check_id} missing from README"
