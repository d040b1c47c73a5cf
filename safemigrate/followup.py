"""Follow-up work, connected to safemigrate's signals in ``AppConfig.ready()``.

The one place that decides what happens after an event, whichever door it came through (a command,
the admin, a task):

- a backup made: copied off-site (SAFEMIGRATE_STORAGE); a scheduled one is followed by rotation;
  a pre-migration one is pinned for SAFEMIGRATE_PIN_PRE_MIGRATE_DAYS at once.
  The pre-migration and pre-restore backups are taken just before the database is replaced, so
  their follow-up waits for the outcome: ``migration_applied`` and ``restore_done``.
- a migration applied: its backup copied off-site, rotation, a JSON dump (SAFEMIGRATE_JSON_AFTER_MIGRATE).
- every event that SAFEMIGRATE_NOTIFY_LEVEL selects: one notification task per channel.

Work runs as a django-q2 task when django-q2 is installed (queued on commit, so a worker never sees
work from a transaction that rolls back), else right away in this process. Queuing never raises:
follow-up work must never fail the backup or migration that triggered it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from django.apps import apps
from django.db import transaction

from safemigrate import signals
from safemigrate.conf import get_settings

logger = logging.getLogger("safemigrate")

GROUP = "safemigrate"
_DEFERRED_REASONS = ("pre_migrate", "pre_restore", "pre_json_restore")


def queue(func: str, *args: Any, alias: str = "default") -> None:
    """Run ``safemigrate.tasks.<func>(*args)`` on commit: through django-q2, or here without it."""

    def run() -> None:
        try:
            if apps.is_installed("django_q"):
                from django_q.tasks import async_task

                async_task(f"safemigrate.tasks.{func}", *args, group=GROUP)
            else:
                from safemigrate import tasks

                getattr(tasks, func)(*args)
        except Exception as exc:  # noqa: BLE001 - housekeeping must not fail what triggered it
            logger.error("safemigrate follow-up %s%r failed to run: %s", func, args, exc)

    try:
        transaction.on_commit(run, using=alias)
    except Exception as exc:  # noqa: BLE001 - e.g. an alias that is gone
        logger.error("safemigrate follow-up %s%r not queued: %s", func, args, exc)


def _copy_offsite(alias: str, name: str) -> None:
    if name and get_settings().storage:
        queue("copy_offsite", name, alias, alias=alias)


def pin_pre_migrate(backup: Any) -> None:
    """Pin a pre-migration backup for SAFEMIGRATE_PIN_PRE_MIGRATE_DAYS: "the migration succeeded
    but the result is wrong" is often noticed days later. Here, not queued: before any rotation."""
    from datetime import timedelta

    from safemigrate.manifest import update_manifest

    days = get_settings().pin_pre_migrate_days
    if days > 0 and not backup.pinned:
        until = backup.created_at + timedelta(days=days)
        update_manifest(backup, pinned_until=until.isoformat(timespec="microseconds"))


def after_backup(*, alias: str, reason: str, backup: Any, **kwargs: Any) -> None:
    if reason == "pre_migrate":
        pin_pre_migrate(backup)
    if reason in _DEFERRED_REASONS:
        return
    _copy_offsite(alias, backup.name)
    if reason == "scheduled":  # scheduled backups never fill the disk between migrations
        queue("rotate_backups", alias, alias=alias)


def after_migration(*, alias: str, backup_name: str, **kwargs: Any) -> None:
    _copy_offsite(alias, backup_name)
    queue("rotate_backups", alias, alias=alias)
    if get_settings().json_after_migrate:
        queue("dump_json", alias, alias=alias)


def after_restore(*, alias: str, safety_backup: Any, **kwargs: Any) -> None:
    if safety_backup is not None:
        _copy_offsite(alias, safety_backup.name)


def remember_verification_failure(*, alias: str, backup: Any, error: str, **kwargs: Any) -> None:
    """For the health signal (safemigrate.W012) until the backup is verified again or deleted."""
    from safemigrate.status import update_status

    at = datetime.now(UTC).isoformat(timespec="microseconds")
    update_status(
        alias, "verification_failed", lambda failed: failed.update({backup.name: {"at": at, "error": error}})
    )


def remember_offsite_failure(**kwargs: Any) -> None:
    """Kept for the admin and W018; ``offsite`` is imported only when a copy has failed."""
    from safemigrate.offsite import remember_offsite_failure as remember

    remember(**kwargs)


def notify(*, signal: Any, **kwargs: Any) -> None:
    """One ``send_notification`` task per channel for an event the level selects."""
    from safemigrate import notify as notifications

    event = signals.event_name(signal)
    if kwargs.get("reason") in _DEFERRED_REASONS:
        return  # its migration's or restore's own event says what happened
    if not notifications.wanted(event):
        return
    names = notifications.channels()
    if not names:
        return
    notice = notifications.notice_for(event, **kwargs).as_json()
    for channel in names:
        queue("send_notification", channel, notice, alias=kwargs.get("alias", "default"))


def connect() -> None:
    """Connect the follow-up receivers (dispatch_uid: connecting twice is harmless)."""
    signals.backup_created.connect(after_backup, dispatch_uid="safemigrate.followup.backup")
    signals.migration_applied.connect(after_migration, dispatch_uid="safemigrate.followup.migration")
    signals.restore_done.connect(after_restore, dispatch_uid="safemigrate.followup.restore")
    signals.verification_failed.connect(
        remember_verification_failure, dispatch_uid="safemigrate.followup.verification"
    )
    signals.offsite_copy_failed.connect(remember_offsite_failure, dispatch_uid="safemigrate.followup.offsite")
    for name, signal in signals.EVENTS.items():
        signal.connect(notify, dispatch_uid=f"safemigrate.followup.notify.{name}")
