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

from django.apps import apps
from django.db import transaction
from django.utils.module_loading import import_string

from safemigrate.conf import get_settings
from safemigrate.exceptions import LockTimeout, SafeMigrateError

logger = logging.getLogger("safemigrate")

GROUP = "safemigrate"
VERIFY_LIMIT = 3
"""How many unverified backups one ``verify_backups`` run checks by default."""


def run_task(path: str, *args: Any) -> None:
    """Queue task ``path`` on django-q2; without django-q2 installed, run it now instead."""
    if apps.is_installed("django_q"):
        from django_q.tasks import async_task

        async_task(path, *args, group=GROUP)
        return
    import_string(path)(*args)


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
    scheduled run will take the backup, and the migration made its own. After a backup it queues
    rotation, so scheduled backups never fill the disk between migrations.
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
    transaction.on_commit(lambda: run_task("safemigrate.tasks.rotate_backups", alias))
    manifest = result.manifest
    queue_offsite_copy(alias=alias, name=manifest.name)
    return {
        "alias": alias,
        "name": manifest.name,
        "path": str(manifest.file_path),
        "size": manifest.size,
        "sha256": manifest.sha256,
        "duration": round(result.duration, 3),
    }


def verify_backups(alias: str = "default", limit: int = VERIFY_LIMIT) -> dict[str, Any]:
    """Verify the newest ``limit`` unverified backups (checksum + scratch restore + integrity).

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
        if failed:
            raise SafeMigrateError(
                f"{len(failed)} of {len(pending)} backup(s) of {alias!r} failed verification: "
                f"{'; '.join(failed)}. Do not restore them; take a new backup (manage.py backup)"
            )
    return {"alias": alias, "verified": verified, "gone": gone}


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


def queue_offsite_copy(*, alias: str, name: str) -> bool:
    """Queue ``copy_offsite`` for a new backup when SAFEMIGRATE_STORAGE is set (True if queued).

    Queued on commit. A broker that cannot take the task is logged, never raised: the local
    backup is already safe, and the next backup is copied again.
    """
    if not get_settings().storage:
        return False

    def enqueue() -> None:
        try:
            run_task("safemigrate.tasks.copy_offsite", name, alias)
        except Exception as exc:  # noqa: BLE001 - housekeeping must not fail a backup
            logger.warning("could not queue the off-site copy of %s: %s", name, exc)

    transaction.on_commit(enqueue)
    return True


def queue_after_migrate(alias: str) -> None:
    """Queue rotation (and a JSON dump if SAFEMIGRATE_JSON_AFTER_MIGRATE) after a safemigrate run.

    Queued on commit, so a worker never sees work from a transaction that rolls back.
    """

    def enqueue() -> None:
        run_task("safemigrate.tasks.rotate_backups", alias)
        if get_settings().json_after_migrate:
            run_task("safemigrate.tasks.dump_json", alias)

    transaction.on_commit(enqueue)
