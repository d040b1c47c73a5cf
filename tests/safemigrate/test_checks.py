"""System checks: each ID once, each with a hint, and the settings they police."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

from django.core import checks
from django.core.management import call_command
from django.test import override_settings

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
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for check_id in defined:
        assert f"`{check_id}`" in readme, f"{check_id} missing from README"


def test_e002__silent_when_the_registry_does_not_include_safemigrate(settings):
    """A project's test with its own INSTALLED_APPS (override_settings) gets no false error."""
    settings.INSTALLED_APPS = BASE_APPS
    assert "safemigrate.E002" not in ids(checks.run_checks())


def test_e002__reported_when_an_app_above_safemigrate_overrides_migrate(settings):
    settings.INSTALLED_APPS = ["tests.migrateoverride", "safemigrate", *BASE_APPS]
    assert "safemigrate.E002" in ids(checks.run_checks())


BASE_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.admin"]


def w003(installed: list[str]) -> list[checks.CheckMessage]:
    with override_settings(INSTALLED_APPS=installed):
        return [m for m in checks.run_checks() if m.id == "safemigrate.W003"]


def test_check_command_name__alone_is_quiet():
    assert w003(["safemigrate", *BASE_APPS]) == []


def test_check_command_name__ours_wins_names_what_is_lost():
    """safemigrate above the other app: its `safemigrate` cannot be run any more."""
    (message,) = w003(["safemigrate", "tests.othersafemigrate", *BASE_APPS])
    assert message.level == checks.WARNING
    assert message.msg == (
        "`manage.py safemigrate` runs safemigrate's command; the `safemigrate` command of "
        "tests.othersafemigrate cannot be run"
    )
    assert "You lose that app's own `safemigrate`" in message.hint


def test_check_command_name__theirs_wins_names_what_is_lost():
    """The other app first: `manage.py safemigrate` is theirs, without backup and rollback."""
    installed = ["tests.othersafemigrate", "safemigrate", *BASE_APPS]
    (message,) = w003(installed)
    assert message.msg == (
        "`manage.py safemigrate` runs the command of tests.othersafemigrate, not safemigrate's: "
        "it migrates without safemigrate's checks, backup and rollback"
    )
    assert "`manage.py migrate` is still safemigrate's and guarded" in message.hint
    with override_settings(INSTALLED_APPS=installed):
        out = StringIO()
        call_command("safemigrate", stdout=out)
        assert out.getvalue() == "the other safemigrate\n"


def test_check_schedules__schedule_without_django_q_warns(settings, tmp_path):
    settings.SAFEMIGRATE_BACKUP_DIR = str(tmp_path / "b")
    settings.SAFEMIGRATE_SCHEDULE = "0 3 * * *"
    with override_settings(INSTALLED_APPS=["safemigrate", *BASE_APPS]):
        (message,) = [m for m in checks.run_checks() if m.id == "safemigrate.W004"]
    assert message.msg == (
        "SAFEMIGRATE_SCHEDULE is set, but django-q2 is not in INSTALLED_APPS: nothing runs the schedule"
    )


def test_checks__a_short_encryption_passphrase_is_w003(settings, tmp_path):
    settings.SAFEMIGRATE_BACKUP_DIR = str(tmp_path / "b")
    settings.SAFEMIGRATE_ENCRYPTION_KEY = "hunter2"
    assert "safemigrate.W005" in ids(checks.run_checks())
    settings.SAFEMIGRATE_ENCRYPTION_KEY = "a long correct horse battery staple"
    assert "safemigrate.W005" not in ids(checks.run_checks())
