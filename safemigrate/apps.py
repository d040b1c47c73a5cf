"""App configuration: registers the system checks, the follow-up receivers and the schedule sync."""

from __future__ import annotations

import logging
from typing import Any

from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _

logger = logging.getLogger("safemigrate")

BOOKKEEPING_APPS = frozenset({"django_q", "safemigrate"})
"""Apps whose rows are installation state, not the project's data: django-q2's queue, results and
schedules (re-registered from settings) and safemigrate's own catalogue and run log (rebuilt from
the backup folder)."""


def is_project_app(label: str) -> bool:
    """An app of the project itself: not Django's own (``django.*``), nor a bookkeeping app."""
    if label in BOOKKEEPING_APPS:
        return False
    try:
        return not apps.get_app_config(label).name.startswith("django.")
    except LookupError:
        return True


def sync_schedules_after_migrate(*, using: str, **kwargs: Any) -> None:
    """post_migrate: bring django-q2's schedules in line with settings.

    Never fails the migration: a problem is logged (``manage.py syncschedules`` says it in full).
    """
    if not apps.is_installed("django_q"):
        return
    from safemigrate.schedules import schedule_database, schedules_table_ready, sync_schedules

    try:
        if using != schedule_database() or not schedules_table_ready(using=using):
            return  # django_q not migrated (yet) on this database: the next migrate syncs
        outcome = sync_schedules()
    except Exception as exc:  # noqa: BLE001 - housekeeping must not undo a good migration
        logger.error("safemigrate schedules not synced: %s; run manage.py syncschedules", exc)
        return
    changed = {name: what for name, what in outcome.items() if what not in ("unchanged", "absent")}
    if changed:
        logger.info("safemigrate schedules: %s", changed)


class SafeMigrateConfig(AppConfig):
    name = "safemigrate"
    verbose_name = _("Safe migrations and backups")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from safemigrate import (
            checks,  # noqa: F401 - registers the checks
            followup,
        )

        followup.connect()

        post_migrate.connect(
            sync_schedules_after_migrate, sender=self, dispatch_uid="safemigrate.sync_schedules"
        )
