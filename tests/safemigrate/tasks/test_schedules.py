"""Schedules from settings: idempotent sync, the command, post_migrate, and the E006 check."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import datetime
from io import StringIO

import pytest
from croniter import croniter
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule

from safemigrate.checks import check_settings
from safemigrate.exceptions import SafeMigrateError
from safemigrate.schedules import SCHEDULED_BACKUP, VERIFY_BACKUPS, sync_schedules
from tests.safemigrate.tasks.conftest import project_env


def schedules() -> dict[str, tuple[str, str, str]]:
    return {s.name: (s.func, s.args, s.cron) for s in Schedule.objects.all()}


def local_now() -> datetime:
    """Now in TIME_ZONE, as django-q2 computes it (naive local time when USE_TZ is False)."""
    return timezone.localtime() if settings.USE_TZ else timezone.now()


@pytest.mark.django_db
def test_sync_schedules__twice_makes_one_schedule_each(settings):
    settings.SAFEMIGRATE_SCHEDULE = "0 3 * * *"
    settings.SAFEMIGRATE_VERIFY_SCHEDULE = "30 4 * * 0"
    assert sync_schedules() == {SCHEDULED_BACKUP: "created", VERIFY_BACKUPS: "created"}
    assert sync_schedules() == {SCHEDULED_BACKUP: "unchanged", VERIFY_BACKUPS: "unchanged"}
    assert schedules() == {
        SCHEDULED_BACKUP: ("safemigrate.tasks.scheduled_backup", "('default',)", "0 3 * * *"),
        VERIFY_BACKUPS: ("safemigrate.tasks.verify_backups", "('default',)", "30 4 * * 0"),
    }
    assert {s.schedule_type for s in Schedule.objects.all()} == {Schedule.CRON}


@pytest.mark.django_db
def test_sync_schedules__first_run_is_the_next_cron_time_not_now(settings):
    """django-q2 would otherwise run a new schedule at its first tick."""
    settings.SAFEMIGRATE_SCHEDULE = "0 3 * * *"
    sync_schedules()
    next_run = Schedule.objects.get(name=SCHEDULED_BACKUP).next_run
    expected = croniter("0 3 * * *", local_now()).get_next(datetime)
    assert next_run == expected
    assert next_run > timezone.now()


@pytest.mark.django_db
def test_sync_schedules__changed_cron_updates_in_place(settings):
    settings.SAFEMIGRATE_SCHEDULE = "0 3 * * *"
    sync_schedules()
    pk = Schedule.objects.get(name=SCHEDULED_BACKUP).pk
    settings.SAFEMIGRATE_SCHEDULE = "15 */6 * * *"
    assert sync_schedules()[SCHEDULED_BACKUP] == "updated"
    schedule = Schedule.objects.get(name=SCHEDULED_BACKUP)
    assert schedule.pk == pk
    assert schedule.cron == "15 */6 * * *"
    assert schedule.next_run == croniter("15 */6 * * *", local_now()).get_next(datetime)


@pytest.mark.django_db
def test_sync_schedules__unset_setting_deletes_the_schedule(settings):
    settings.SAFEMIGRATE_SCHEDULE = "0 3 * * *"
    settings.SAFEMIGRATE_VERIFY_SCHEDULE = "30 4 * * 0"
    sync_schedules()
    settings.SAFEMIGRATE_SCHEDULE = None
    assert sync_schedules() == {SCHEDULED_BACKUP: "deleted", VERIFY_BACKUPS: "unchanged"}
    assert list(schedules()) == [VERIFY_BACKUPS]
    settings.SAFEMIGRATE_VERIFY_SCHEDULE = ""
    assert sync_schedules() == {SCHEDULED_BACKUP: "absent", VERIFY_BACKUPS: "deleted"}
    assert not Schedule.objects.exists()


@pytest.mark.django_db
def test_sync_schedules__repairs_an_edited_or_duplicated_schedule(settings):
    """A schedule edited or copied by hand in the admin is put back to what settings say."""
    settings.SAFEMIGRATE_SCHEDULE = "0 3 * * *"
    sync_schedules()
    Schedule.objects.filter(name=SCHEDULED_BACKUP).update(func="elsewhere.task", repeats=0)
    Schedule.objects.create(name=SCHEDULED_BACKUP, func="safemigrate.tasks.scheduled_backup")
    assert sync_schedules()[SCHEDULED_BACKUP] == "updated"
    schedule = Schedule.objects.get(name=SCHEDULED_BACKUP)
    assert (schedule.func, schedule.repeats) == ("safemigrate.tasks.scheduled_backup", -1)


@pytest.mark.django_db
def test_sync_schedules__invalid_cron_raises_and_changes_nothing(settings):
    settings.SAFEMIGRATE_SCHEDULE = "0 3 * * *"
    sync_schedules()
    settings.SAFEMIGRATE_VERIFY_SCHEDULE = "every sunday"
    with pytest.raises(
        SafeMigrateError,
        match=r"^SAFEMIGRATE_VERIFY_SCHEDULE='every sunday' is not a valid cron expression; ",
    ):
        sync_schedules()
    assert list(schedules()) == [SCHEDULED_BACKUP]


@pytest.mark.django_db
def test_syncschedules_command__says_what_it_did(settings):
    settings.SAFEMIGRATE_SCHEDULE = "0 3 * * *"
    out = StringIO()
    call_command("syncschedules", stdout=out)
    assert out.getvalue() == (
        "safemigrate: scheduled backup: created (cron '0 3 * * *')\nsafemigrate: verify backups: absent\n"
    )


@pytest.mark.django_db(transaction=True)
def test_migrate__syncs_schedules_on_post_migrate(settings):
    settings.SAFEMIGRATE_SCHEDULE = "0 3 * * *"
    call_command("migrate", stdout=StringIO(), verbosity=0)
    call_command("migrate", stdout=StringIO(), verbosity=0)
    assert list(schedules()) == [SCHEDULED_BACKUP]
    settings.SAFEMIGRATE_SCHEDULE = None
    call_command("migrate", stdout=StringIO(), verbosity=0)
    assert not Schedule.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_migrate__invalid_cron_is_logged_never_fails_the_migration(settings, caplog):
    """With checks skipped (call_command skips them), the sync failure is logged, not raised."""
    settings.SAFEMIGRATE_SCHEDULE = "61 * * * *"
    with caplog.at_level(logging.ERROR, logger="safemigrate"):
        call_command("migrate", stdout=StringIO(), verbosity=0)
    assert (
        "safemigrate schedules not synced: SAFEMIGRATE_SCHEDULE='61 * * * *' is not a valid cron "
        "expression; use five fields (minute hour day month weekday), e.g. '0 3 * * *', or unset "
        "it; run manage.py syncschedules"
    ) in caplog.text
    assert not Schedule.objects.exists()


@pytest.mark.parametrize("name", ["SAFEMIGRATE_SCHEDULE", "SAFEMIGRATE_VERIFY_SCHEDULE"])
@pytest.mark.parametrize("expression", ["61 * * * *", "daily", "* * *", "0 3 * * * * * *"])
def test_check__invalid_cron_is_e006(settings, name, expression):
    setattr(settings, name, expression)
    messages = [m for m in check_settings() if m.id == "safemigrate.E006"]
    assert [m.msg for m in messages] == [f"{name}={expression!r} is not a valid cron expression"]
    assert messages[0].hint == (
        "Use five fields (minute hour day month weekday), e.g. '0 3 * * *' for every day at "
        "03:00, or unset it."
    )
    assert messages[0].is_serious()


@pytest.mark.parametrize("expression", [None, "", "0 3 * * *", "*/15 * * * 1-5", "@daily"])
def test_check__valid_or_unset_cron_is_fine(settings, expression):
    settings.SAFEMIGRATE_SCHEDULE = expression
    settings.SAFEMIGRATE_VERIFY_SCHEDULE = expression
    assert not [m for m in check_settings() if m.id == "safemigrate.E006"]


def test_migrate__before_django_q_tables_exist_skips_quietly_then_syncs(tmp_path):
    """A fresh database migrated app by app: the schedule appears once django_q is migrated."""
    env = project_env(
        database=tmp_path / "db.sqlite3",
        backup_dir=tmp_path / "backups",
        SAFEMIGRATE_SCHEDULE="0 3 * * *",
        SAFEMIGRATE_LOG_LEVEL="INFO",
    )

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    first = manage("migrate", "safemigrate", "--noinput", "-v", "0")
    assert first.returncode == 0, first.stderr
    assert "schedules" not in first.stderr
    second = manage("migrate", "--noinput", "-v", "0")
    assert second.returncode == 0, second.stderr
    assert "safemigrate schedules: {'safemigrate: scheduled backup': 'created'}" in second.stderr
    listed = manage("syncschedules")
    assert listed.stdout.splitlines()[0] == "safemigrate: scheduled backup: unchanged (cron '0 3 * * *')"
