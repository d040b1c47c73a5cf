"""The safe-migrate sequence around Django's own ``migrate``.

lock -> plan -> (empty: plain migrate) -> pre-check -> verified backup -> migrate -> post-check
-> on any failure, restore the backup and prove the database is back -> record -> queue rotation.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import CommandError
from django.db import DatabaseError, connections
from django.db.migrations.recorder import MigrationRecorder

from safemigrate import catalogue
from safemigrate.backup import BackupResult, create_backup
from safemigrate.exceptions import (
    IntegrityCheckFailed,
    MigrationFailed,
    SafeMigrateError,
)
from safemigrate.integrity import ensure_healthy
from safemigrate.lock import migration_lock
from safemigrate.plan import MigrationPlan, pending_plan
from safemigrate.restore import restore_backup
from safemigrate.vendors import get_adapter
from safemigrate.vendors.base import Progress

logger = logging.getLogger("safemigrate")


@dataclass(frozen=True)
class SafeMigrateResult:
    status: str
    """applied | nothing | passthrough (Django's migrate ran unguarded: new database or --fake)."""
    plan: list[str]
    backup: BackupResult | None
    duration: float


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """A container stop (SIGTERM) during a migration rolls back like Ctrl-C does."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass(frozen=True)
class _Run:
    """One guarded run, for its MigrationRun row."""

    alias: str
    labels: list[str]
    started: float
    started_at: datetime

    def record(self, status: str, *, backup: BackupResult | None = None, error: str = "") -> None:
        """Log a MigrationRun row; the catalogue may not exist yet (or have just been rolled back)."""
        from safemigrate.models import MigrationRun

        fields: dict[str, Any] = {}
        if backup is not None:
            fields["backup_name"] = backup.manifest.name
            fields["backup_id"] = catalogue.catalogue_ids().get(backup.manifest.name)
        try:
            MigrationRun.objects.create(
                started=self.started_at,
                finished=datetime.now(UTC),
                duration=time.monotonic() - self.started,
                database=self.alias,
                status=status,
                plan=self.labels,
                error=error,
                host=socket.gethostname(),
                pid=os.getpid(),
                **fields,
            )
        except DatabaseError as exc:
            logger.debug("migration run not recorded: %s", exc)
        from safemigrate import signals  # every outcome is announced once, here

        name = backup.manifest.name if backup is not None else ""
        signals.send_run(status, alias=self.alias, plan=self.labels, backup_name=name, error=error)


def _failed_step(alias: str, plan: MigrationPlan) -> str:
    """The first planned migration that did not end up (un)applied: the one that failed."""
    try:
        applied = set(MigrationRecorder(connections[alias]).applied_migrations())
    except Exception:  # noqa: BLE001 - the connection may be broken by the failure
        return plan.steps[0].label if plan.steps else "?"
    for step in plan.steps:
        done = ((step.app_label, step.name) in applied) != step.backwards
        if not done:
            return step.label
    return "the post-migration check"


def _post_check(alias: str, plan: MigrationPlan) -> None:
    ensure_healthy(alias=alias, when="post-migration check")
    applied = set(MigrationRecorder(connections[alias]).applied_migrations())
    missing = [s.label for s in plan.steps if ((s.app_label, s.name) in applied) == s.backwards]
    if missing:
        raise IntegrityCheckFailed(
            f"post-migration check: {', '.join(missing)} not recorded as "
            f"{'un' if plan.steps[0].backwards else ''}applied"
        )


def safe_migrate(
    *,
    alias: str,
    run_migrate: Callable[[], None],
    app_label: str | None = None,
    target: str | None = None,
    progress: Progress | None = None,
    after_success: Callable[[str], None] | None = None,
) -> SafeMigrateResult:
    """Run ``run_migrate`` (Django's migrate) inside the safe-migrate sequence.

    Raises IntegrityCheckFailed / BackupError (nothing changed), LockTimeout, or MigrationFailed
    (the database was restored from the pre-migration backup).
    """
    started = time.monotonic()
    try:
        plan = pending_plan(alias=alias, app_label=app_label, target=target)
    except Exception:  # noqa: BLE001 - a bad target: Django's migrate reports it in its own words
        run_migrate()
        return SafeMigrateResult("passthrough", [], None, time.monotonic() - started)
    if plan.is_empty:  # nothing to apply (every container start): Django as usual
        run_migrate()
        return SafeMigrateResult("nothing", [], None, time.monotonic() - started)

    with migration_lock(alias=alias):
        plan = pending_plan(alias=alias, app_label=app_label, target=target)
        if plan.is_empty:  # another process applied it while we waited for the lock
            run_migrate()
            return SafeMigrateResult("nothing", [], None, time.monotonic() - started)
        if not plan.has_applied_migrations:
            # A brand-new database has nothing to lose: Django as usual, with no backup, but under
            # the lock, so containers starting together on a fresh volume build it only once.
            try:
                run_migrate()
            except (SafeMigrateError, CommandError):
                raise  # already one clear line (e.g. a bad target named by Django)
            except Exception as exc:
                raise MigrationFailed(
                    f"migration {_failed_step(alias, plan)} failed on a new, empty database "
                    f"({exc}); no backup was needed and none was taken. Fix the migration, then "
                    "delete the half-built database (or run migrate again if it is a server "
                    "database you can empty) and run safemigrate again"
                ) from exc
            return SafeMigrateResult("passthrough", plan.labels(), None, time.monotonic() - started)
        labels = plan.labels()
        run = _Run(alias=alias, labels=labels, started=started, started_at=datetime.now(UTC))
        logger.info("safemigrate on %s: %s", alias, ", ".join(labels))
        if progress:
            progress(f"Checking {get_adapter(alias).database_name()} before migrating")
        try:
            ensure_healthy(alias=alias, when="pre-migration check")
            backup = create_backup(alias=alias, reason="pre_migrate", progress=progress, lock=False)
        except (SafeMigrateError, KeyboardInterrupt) as exc:
            run.record("refused", error=str(exc) or type(exc).__name__)
            if isinstance(exc, KeyboardInterrupt):
                raise SafeMigrateError(
                    "interrupted while backing up: no migration was run and the database is "
                    "unchanged; run safemigrate again"
                ) from exc
            raise
        if progress:
            progress(f"Backup {backup.manifest.name} verified; migrating")
        try:
            with sigterm_as_interrupt():
                run_migrate()
            _post_check(alias, plan)
        except BaseException as exc:
            failed = _failed_step(alias, plan)
            if isinstance(exc, KeyboardInterrupt):
                reason = f"interrupted ({str(exc) or 'Ctrl-C'})"
            else:
                reason = str(exc) or type(exc).__name__
            logger.error("migration %s failed (%s); restoring %s", failed, reason, backup.manifest.name)
            if progress:
                progress(f"Migration {failed} failed: restoring {backup.manifest.name}")
            _rollback(run, backup=backup, progress=progress, failed=failed, reason=reason)
            raise MigrationFailed(
                f"migration {failed} failed ({reason}); the database was restored from "
                f"{backup.manifest.name} and is as it was before. Fix the migration and run "
                "safemigrate again"
            ) from exc
        duration = time.monotonic() - started
        catalogue.sync_catalogue(alias=alias)  # the backup table may be new in this plan
        run.record("applied", backup=backup)
    if after_success is not None:
        try:
            after_success(alias)
        except Exception as exc:  # noqa: BLE001 - rotation is housekeeping, not the migration
            logger.warning("could not queue rotation after migrating: %s", exc)
    return SafeMigrateResult("applied", labels, backup, duration)


def _rollback(
    run: _Run, *, backup: BackupResult, progress: Progress | None, failed: str, reason: str
) -> None:
    """Restore the pre-migration backup and prove the database is back to it."""
    alias = run.alias
    connections[alias].close()  # a failed migration may leave a broken transaction behind
    try:
        restore_backup(backup=backup.manifest, alias=alias, safety_backup=False, progress=progress)
        adapter = get_adapter(alias)
        if adapter.applied_migrations() != backup.manifest.migrations:
            raise SafeMigrateError("the restored database's migrations differ from the backup's")
    except BaseException as exc:
        logger.critical("ROLLBACK FAILED for %s: %s", alias, exc)
        run.record("failed", backup=backup, error=f"{failed}: {reason}; rollback failed: {exc}")
        raise MigrationFailed(
            f"migration {failed} failed ({reason}) AND the automatic restore failed ({exc}); "
            f"restore by hand: manage.py restore {backup.manifest.name} --no-safety-backup"
        ) from exc
    run.record("rolled_back", backup=backup, error=f"{failed}: {reason}")
