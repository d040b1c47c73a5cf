"""django-q2 tasks: plain functions with primitive arguments that call the library.

django-q2 is optional (the ``tasks`` extra): without ``django_q`` in INSTALLED_APPS, the work that
would be queued after a migration or backup (rotation, off-site copy, JSON dump) runs at once, in
the same process.

Each returns a small JSON-able summary (django-q2 stores it as the task's result, visible in its
admin). Failures are logged on the ``safemigrate`` logger and re-raised, so django-q2 records a
Failure with the message.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from safemigrate.exceptions import LockTimeout, SafeMigrateError

logger = logging.getLogger("safemigrate")

VERIFY_LIMIT = 3
"""How many unverified backups one ``verify_backups`` run checks by default."""


@contextlib.contextmanager
def _logged(task: str, alias: str) -> Iterator[None]:
    """Log a failing task with its name and database, then let django-q2 record the Failure."""
    try:
        yield
    except Exception as exc:
        logger.error("safemigrate task %s(%r) failed: %s", task, alias, exc)
        raise


def rotate_backups(alias: str = "default", lock_timeout: float | None = None) -> dict[str, Any]:
    """Rotation after a migration (or on demand): keep SAFEMIGRATE_KEEP backups.

    Runs under the migration lock, so two workers never rotate the same files and a backup
    being restored is never deleted; LockTimeout (a Failure) after ``lock_timeout`` seconds.
    """
    from safemigrate.rotation import rotate_backups as rotate

    with _logged("rotate_backups", alias):
        result = rotate(alias=alias, lock_timeout=lock_timeout)
    return {"alias": alias, "deleted": result.deleted, "kept": len(result.kept)}


def scheduled_backup(alias: str = "default", lock_timeout: float | None = None) -> dict[str, Any]:
    """A verified backup with reason "scheduled"; skipped (logged) while a migration holds the lock.

    Waits up to ``lock_timeout`` seconds (SAFEMIGRATE_LOCK_TIMEOUT) for a running migration,
    restore or rotation, then returns ``{"skipped": reason}`` instead of failing: the next
    scheduled run will take the backup, and the migration made its own. Its follow-up (rotation,
    the off-site copy) is safemigrate.followup's, as for every backup.
    """
    from safemigrate.backup import create_backup
    from safemigrate.lock import migration_lock

    with _logged("scheduled_backup", alias):
        try:
            with migration_lock(alias=alias, timeout=lock_timeout):
                result = create_backup(alias=alias, reason="scheduled", lock=False)
        except LockTimeout as exc:
            reason = f"scheduled backup of {alias!r} skipped: {exc}"
            logger.warning("%s", reason)
            return {"alias": alias, "skipped": reason}
    manifest = result.manifest
    return {
        "alias": alias,
        "name": manifest.name,
        "path": str(manifest.file_path),
        "size": manifest.size,
        "sha256": manifest.sha256,
        "duration": round(result.duration, 3),
    }


def verify_backups(alias: str = "default", limit: int = VERIFY_LIMIT) -> dict[str, Any]:
    """Verify the newest ``limit`` unverified backups (checksum + scratch restore + integrity),
    then run the monitors (``backups_stale``, so a schedule makes them an alert).

    Every chosen backup is tried; if any fails, the task fails naming each damaged backup. One
    that rotation deleted meanwhile is listed as ``gone``, not as a failure (verification never
    touches the live database, so it does not hold the migration lock).
    """
    from safemigrate.catalogue import list_backups
    from safemigrate.restore import verify_backup

    with _logged("verify_backups", alias):
        pending = [m for m in list_backups(alias=alias) if not m.verified][: max(limit, 0)]
        verified: list[str] = []
        gone: list[str] = []
        failed: list[str] = []
        for manifest in pending:
            try:
                verify_backup(backup=manifest, alias=alias)
            except SafeMigrateError as exc:
                if not manifest.file_path.exists():
                    logger.info("backup %s was deleted while being verified", manifest.name)
                    gone.append(manifest.name)
                    continue
                logger.error("backup %s failed verification: %s", manifest.name, exc)
                failed.append(f"{manifest.name} ({exc})")
            else:
                verified.append(manifest.name)
        stale = _announce_health(alias)
        if failed:
            raise SafeMigrateError(
                f"{len(failed)} of {len(pending)} backup(s) of {alias!r} failed verification: "
                f"{'; '.join(failed)}. Do not restore them; take a new backup (manage.py backup)"
            )
    return {"alias": alias, "verified": verified, "gone": gone, "problems": stale}


def _announce_health(alias: str) -> list[str]:
    """The monitors (W001, W010-W013): send ``backups_stale`` when one finds a problem."""
    from safemigrate import signals
    from safemigrate.health import backup_health

    problems = [p for p in backup_health(alias=alias).problems if p.id != "safemigrate.W002"]
    if problems:
        signals.send(signals.backups_stale, alias=alias, problems=problems)
    return [p.id for p in problems]


def dump_json(alias: str = "default") -> dict[str, Any]:
    """A portable, verified JSON dump of database ``alias`` into its backup folder."""
    with _logged("dump_json", alias):
        from safemigrate.jsondump import create_json_dump

        result = create_json_dump(alias=alias)
    return {
        "alias": alias,
        "path": str(result.path),
        "size": result.size,
        "sha256": result.sha256,
        "models": result.models,
        "duration": round(result.duration, 3),
    }


def copy_offsite(name: str, alias: str = "default") -> dict[str, Any]:
    """Copy backup ``name`` of database ``alias`` to SAFEMIGRATE_STORAGE (safemigrate.offsite).

    A backup that rotation removed before its turn is skipped with a logged warning; any other
    failure is a Failure, and the local backup stays as it is.
    """
    from safemigrate.catalogue import find_backup
    from safemigrate.exceptions import BackupNotFound
    from safemigrate.offsite import copy_offsite as copy

    with _logged("copy_offsite", alias):
        try:
            manifest = find_backup(name, alias=alias)
        except BackupNotFound as exc:
            reason = f"off-site copy of {name} skipped: {exc}"
            logger.warning("%s", reason)
            return {"alias": alias, "name": name, "skipped": reason}
        result = copy(manifest=manifest)
    return {
        "alias": alias,
        "name": name,
        "storage": result.storage,
        "objects": result.names,
        "kept": result.kept,
        "size": result.size,
        "sha256_checked": result.sha256_checked,
        "duration": round(result.duration, 3),
    }


def send_notification(channel: str, notice: dict[str, Any]) -> dict[str, Any]:
    """Send one notice (safemigrate.notify.Notice as JSON) to one channel, with retries.

    Never raises: a channel that keeps failing is logged and recorded (safemigrate.W013), and
    django-q2 stores the outcome as the task's result.
    """
    from safemigrate.notify import Notice, send_notice

    return send_notice(channel, Notice(**notice))
