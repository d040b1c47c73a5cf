"""System checks: each ID once, each with a hint, and the settings they police."""

from __future__ import annotations

import re
from pathlib import Path

from django.core import checks

import safemigrate


def ids(messages) -> set[str]:
    return {m.id for m in messages}


def test_checks__clean_by_default(settings, tmp_path):
    settings.SAFEMIGRATE_BACKUP_DIR = str(tmp_path / "b")
    errors = [m for m in checks.run_checks() if m.id and m.id.startswith("safemigrate.E")]
    assert errors == []


def test_checks__bad_settings(settings, tmp_path):
    settings.SAFEMIGRATE_BACKUP_DIR = str(tmp_path / "b")
    settings.SAFEMIGRATE_COMPRESS = "rar"
    settings.SAFEMIGRATE_INTEGRITY_CHECK = "thorough"
    settings.SAFEMIGRATE_KEEP = 0
    found = ids(checks.run_checks())
    assert {"safemigrate.E003", "safemigrate.E004", "safemigrate.E005"} <= found


def test_checks__each_id_defined_once_with_a_hint_and_documented():
    source = (Path(safemigrate.__file__).parent / "checks.py").read_text()
    defined = re.findall(r'id="(safemigrate\.[EW]\d{3})"', source)
    assert len(defined) == len(set(defined)), defined
    assert source.count("hint=") >= len(defined)
    readme = (Path(safemigrate.__file__).parent.parent / "README.md").read_text()
    for check_id in defined:
        assert f"`{check_id}`" in readme, f"{check_id} missing from README"


def test_checks__a_short_encryption_passphrase_is_w003(settings, tmp_path):
    settings.SAFEMIGRATE_BACKUP_DIR = str(tmp_path / "b")
    settings.SAFEMIGRATE_ENCRYPTION_KEY = "hunter2"
    assert "safemigrate.W003" in ids(checks.run_checks())
    settings.SAFEMIGRATE_ENCRYPTION_KEY = "a long correct horse battery staple"
    assert "safemigrate.W003" not in ids(checks.run_checks())
