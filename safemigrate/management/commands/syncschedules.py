"""``syncschedules``: django-q2 schedules from SAFEMIGRATE_SCHEDULE / SAFEMIGRATE_VERIFY_SCHEDULE.

``migrate`` does the same after every run; this command is for changing settings without a
migration, and says what it did.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import CommandError

from safemigrate.management.base import SafeMigrateCommand


class Command(SafeMigrateCommand):
    help = (
        "Creates, updates or deletes safemigrate's django-q2 schedules (scheduled backup, "
        "backup verification) from settings. Safe to run any number of times."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if not apps.is_installed("django_q"):
            raise CommandError(
                "schedules need django-q2: pip install 'safemigrate[tasks]' and add 'django_q' to "
                "INSTALLED_APPS"
            )
        from safemigrate.schedules import sync_schedules, wanted_schedules

        outcome = sync_schedules()
        crons = {spec.name: spec.cron for spec in wanted_schedules()}
        for name, what in outcome.items():
            cron = f" (cron {crons[name]!r})" if crons.get(name) else ""
            self.stdout.write(f"{name}: {what}{cron}")
