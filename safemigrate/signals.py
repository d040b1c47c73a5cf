"""What happened, as Django signals: the library sends them, follow-up work and projects listen.

Like Django's ``post_migrate``: no door (command, admin view, task) decides what happens after a
backup or a migration. ``safemigrate.followup`` connects the off-site copy, rotation, JSON dumps
and notifications in ``AppConfig.ready()``; a project can connect its own receivers the same way.

Every signal is sent with ``sender`` = the model it is about (``Backup`` or ``MigrationRun``) and
these keyword arguments (plus ``signal``):

- ``backup_created``: ``alias``, ``reason``, ``backup`` (a ``Manifest``)
- ``backup_failed``: ``alias``, ``reason``, ``error``
- ``verification_failed``: ``alias``, ``backup``, ``error``
- ``migration_applied`` / ``migration_refused`` / ``migration_rolled_back`` / ``rollback_failed``:
  ``alias``, ``plan`` (migration labels), ``backup_name`` (may be ""), ``error`` (may be "")
- ``offsite_copy_failed``: ``alias``, ``backup``, ``error``
- ``restore_done``: ``alias``, ``backup``, ``safety_backup`` (a ``Manifest`` or None)
- ``backups_stale``: ``alias``, ``problems`` (``health.Problem`` list: age, size, free space, …)

They are sent with ``send_robust``: a receiver that raises is logged and never fails a backup,
a migration or a restore.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger("safemigrate")

backup_created = Signal()
backup_failed = Signal()
verification_failed = Signal()
migration_applied = Signal()
migration_refused = Signal()
migration_rolled_back = Signal()
rollback_failed = Signal()
offsite_copy_failed = Signal()
restore_done = Signal()
backups_stale = Signal()

EVENTS: dict[str, Signal] = {
    "backup_created": backup_created,
    "backup_failed": backup_failed,
    "verification_failed": verification_failed,
    "migration_applied": migration_applied,
    "migration_refused": migration_refused,
    "migration_rolled_back": migration_rolled_back,
    "rollback_failed": rollback_failed,
    "offsite_copy_failed": offsite_copy_failed,
    "restore_done": restore_done,
    "backups_stale": backups_stale,
}
FAILURES = frozenset(EVENTS) - {"backup_created", "migration_applied", "restore_done"}
"""Events that mean something went wrong (SAFEMIGRATE_NOTIFY_LEVEL="failures" sends only these)."""

_RUN_EVENTS = {
    "applied": migration_applied,
    "refused": migration_refused,
    "rolled_back": migration_rolled_back,
    "failed": rollback_failed,
}


def event_name(signal: Signal) -> str:
    return next(name for name, each in EVENTS.items() if each is signal)


def send(signal: Signal, **kwargs: Any) -> None:
    """Send ``signal`` to every receiver; one that raises is logged, never propagated."""
    from safemigrate.models import Backup, MigrationRun

    sender = MigrationRun if signal in _RUN_EVENTS.values() else Backup
    for receiver, result in signal.send_robust(sender=sender, **kwargs):
        if isinstance(result, Exception):
            logger.error(
                "safemigrate: receiver %s of %s failed: %s",
                getattr(receiver, "__qualname__", receiver),
                event_name(signal),
                result,
            )


def send_run(status: str, **kwargs: Any) -> None:
    """The signal for a recorded migration run's status (applied, refused, rolled_back, failed)."""
    signal = _RUN_EVENTS.get(status)
    if signal is not None:
        send(signal, **kwargs)
