"""The safe-migrate sequence around Django's own ``migrate``.

lock -> plan -> (empty: plain migrate) -> pre-check -> verified backup -> migrate -> post-check
-> on any failure, undo it and prove the database is back -> record -> queue rotation.

Undo is a ROLLBACK where the engine allows it (the whole plan and the post-check in one
transaction: SQLite, PostgreSQL with an all-atomic plan); otherwise the backup is restored.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from django.db import DatabaseError, connections
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from safemigrate import catalogue, interrupts, journal
from safemigrate.backup import BackupResult, create_backup
from safemigrate.exceptions import (
    IntegrityCheckFailed,
    Interrupted,
    MigrationFailed,
    SafeMigrateError,
)
from safemigrate.integrity import ensure_healthy
from safemigrate.lock import migration_lock, migration_running
from safemigrate.models import MigrationRun
from safemigrate.plan import MigrationPlan, pending_plan
from safemigrate.restore import clear_caches, restore_backup
from safemigrate.vendors import get_adapter
from safemigrate.vendors.base import RESTORE, TRANSACTION, Progress, VendorAdapter

logger = logging.getLogger("safemigrate")


@dataclass(frozen=True)
class SafeMigrateResult:
    status: str
    """applied | nothing | passthrough (Django's migrate ran unguarded: new database or --fake)."""
    plan: list[str]
    backup: BackupResult | None
    duration: float


@dataclass(frozen=True)
class _Run:
    """One guarded run, for its MigrationRun row."""

    alias: str
    labels: list[str]
    started: float
    started_at: datetime
    rollback: str

    def record(
        self, status: str, *, backup: BackupResult | None = None, error: str = "", rollback: str = ""
    ) -> None:
        """Log a MigrationRun row; the catalogue may not exist yet (or have just been rolled back)."""
        fields: dict[str, Any] = {}
        if backup is not None:
            fields["backup_name"] = backup.manifest.name
            fields["backup_id"] = catalogue.catalogue_ids().get(backup.manifest.name)
        try:
            row = MigrationRun(
                started=self.started_at,
                finished=timezone.now(),  # naive local time when USE_TZ is False
                duration=time.monotonic() - self.started,
                database=self.alias,
                status=status,
                rollback=rollback or self.rollback,
                plan=self.labels,
                error=error,
                host=socket.gethostname(),
                pid=os.getpid(),
                **fields,
            )
            journal.append_run(row)  # beside the backups, so no restore rewinds it (journal.py)
            row.save()
        except DatabaseError as exc:
            logger.debug("migration run not recorded: %s", exc)
        from safemigrate import signals  # every outcome is announced once, here

        name = backup.manifest.name if backup is not None else ""
        signals.send_run(status, alias=self.alias, plan=self.labels, backup_name=name, error=error)


def _failed_step(alias: str, plan: MigrationPlan, *, checking: bool = True) -> str:
    """What failed: the first planned migration not (un)applied, else the post-migration check."""
    try:
        applied = set(MigrationRecorder(connections[alias]).applied_migrations())
    except Exception:  # noqa: BLE001 - the connection may be broken by the failure
        return f"migration {plan.steps[0].label}" if plan.steps else "the migration"
    for step in plan.steps:
        done = ((step.app_label, step.name) in applied) != step.backwards
        if not done:
            return f"migration {step.label}"
    return "the post-migration check" if checking else "a post_migrate handler"


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
    before_lock: Callable[[], None] | None = None,
    clear_errors: tuple[type[Exception], ...] = (),
) -> SafeMigrateResult:
    """Run ``run_migrate`` (Django's migrate) inside the safe-migrate sequence.

    ``before_lock`` runs once there is something to apply, before the lock and the backup.
    ``clear_errors`` are ``run_migrate``'s errors that already say what is wrong in one line (the
    door's own, e.g. ``CommandError``): on a new database they are let out as they are.

    Raises IntegrityCheckFailed / BackupError (nothing changed), LockTimeout, or MigrationFailed
    (the failed migration was undone; its message says how, and what was kept).
    """
    started = time.monotonic()
    unguarded = _nothing_to_guard(
        alias=alias, run_migrate=run_migrate, app_label=app_label, target=target, started=started
    )
    if unguarded is not None:
        return unguarded
    if before_lock is not None:
        before_lock()  # Django's own refusals (conflicts, history, arguments): before lock and backup
    step = functools.partial(
        _locked,
        alias=alias,
        run_migrate=run_migrate,
        app_label=app_label,
        target=target,
        progress=progress,
        started=started,
        clear_errors=clear_errors,
    )
    return _under_lock(alias, step)  # follow-up work (rotation, off-site copy): followup.py


def _nothing_to_guard(
    *,
    alias: str,
    run_migrate: Callable[[], None],
    app_label: str | None,
    target: str | None,
    started: float,
) -> SafeMigrateResult | None:
    """Django's migrate as usual when there is nothing to apply (every container start) or the
    target is bad (Django says so in its own words); None when the plan needs the guard."""
    try:
        plan = pending_plan(alias=alias, app_label=app_label, target=target)
    except Exception:  # noqa: BLE001 - a bad target: Django's migrate reports it in its own words
        run_migrate()
        return SafeMigrateResult("passthrough", [], None, time.monotonic() - started)
    if plan.is_empty:
        run_migrate()
        return SafeMigrateResult("nothing", [], None, time.monotonic() - started)
    return None


def _under_lock(alias: str, step: Callable[[], SafeMigrateResult]) -> SafeMigrateResult:
    """``step`` holding the migration lock and the fence.

    From the lock on, SIGTERM (a container stop) is an interrupt like Ctrl-C: every step ends
    through its own clean-up and one line, never through Python's default handler.
    """
    result: SafeMigrateResult | None = None
    with interrupts.interruptible():
        try:
            with migration_lock(alias=alias), migration_running(alias=alias):  # the fence
                result = step()
        except KeyboardInterrupt as exc:  # escaped between the steps, where nothing was running
            if result is None:
                raise Interrupted(
                    f"{_interrupted(exc)} before migrating: the database is unchanged; run safemigrate again"
                ) from exc
            logger.warning("interrupted while releasing the lock; the migration is applied")
    return result


def _locked(
    *,
    alias: str,
    run_migrate: Callable[[], None],
    app_label: str | None,
    target: str | None,
    progress: Progress | None,
    started: float,
    clear_errors: tuple[type[Exception], ...],
) -> SafeMigrateResult:
    plan = pending_plan(alias=alias, app_label=app_label, target=target)
    if plan.is_empty:  # another process applied it while we waited for the lock
        run_migrate()
        return SafeMigrateResult("nothing", [], None, time.monotonic() - started)
    if not plan.has_applied_migrations:
        _migrate_new_database(alias, plan, run_migrate, clear_errors=clear_errors)
        return SafeMigrateResult("passthrough", plan.labels(), None, time.monotonic() - started)
    labels = plan.labels()
    kind = get_adapter(alias).rollback_kind(plan)
    run = _Run(alias=alias, labels=labels, started=started, started_at=timezone.now(), rollback=kind)
    logger.info("safemigrate on %s (%s rollback): %s", alias, kind, ", ".join(labels))
    # Taken before the backup, so any commit by another connection from here on counts.
    marker = get_adapter(alias).change_marker()
    backup = _checked_backup(run, progress=progress)
    try:
        undo: str | None = kind
        if undo == TRANSACTION:  # None once committed; RESTORE when the engine refused a statement
            undo = _migrate_in_transaction(run, plan, backup, run_migrate, progress, marker)
        if undo == RESTORE:
            _migrate_or_restore(run, plan, backup, run_migrate, progress, marker)
    except KeyboardInterrupt as exc:  # between steps: no migration had started
        with interrupts.deferred():
            run.record("refused", backup=backup, error=_interrupted(exc))
        raise
    return SafeMigrateResult("applied", labels, backup, time.monotonic() - started)


def _migrate_new_database(
    alias: str,
    plan: MigrationPlan,
    run_migrate: Callable[[], None],
    *,
    clear_errors: tuple[type[Exception], ...],
) -> None:
    """A brand-new database has nothing to lose: Django as usual, with no backup, but under the
    lock, so containers starting together on a fresh volume build it only once."""
    passing: tuple[type[BaseException], ...] = (SafeMigrateError, *clear_errors)
    try:
        run_migrate()
    except passing:
        raise  # already one clear line (e.g. a bad target named by Django)
    except (Exception, KeyboardInterrupt) as exc:
        reason = _reason(exc)
        raise MigrationFailed(
            f"{_failed_step(alias, plan)} failed on a new, empty database "
            f"({reason}); no backup was needed and none was taken. Fix the migration, then "
            "delete the half-built database (or run migrate again if it is a server "
            "database you can empty) and run safemigrate again"
        ) from exc


def _interrupted(exc: BaseException) -> str:
    return f"interrupted ({str(exc) or 'Ctrl-C'})"


def _checked_backup(run: _Run, *, progress: Progress | None) -> BackupResult:
    """Pre-migration check and verified backup; refusals and interrupts leave nothing changed."""
    adapter = get_adapter(run.alias)
    if progress:
        progress(f"Checking {adapter.database_name()} before migrating")
    try:
        # The pre-check is folded into the backup's own check of the live database (one pass).
        backup = create_backup(
            alias=run.alias,
            reason="pre_migrate",
            progress=progress,
            lock=False,
            precheck="pre-migration check",
        )
    except (SafeMigrateError, KeyboardInterrupt) as exc:
        with interrupts.deferred():
            run.record("refused", error=str(exc) or type(exc).__name__)
        if isinstance(exc, KeyboardInterrupt):
            raise Interrupted(
                f"{_interrupted(exc)} while checking and backing up: no migration was run and the "
                "database is unchanged; run safemigrate again"
            ) from exc
        raise
    if progress:
        how = "one transaction" if run.rollback == TRANSACTION else "restore from this backup"
        progress(f"Backup {backup.manifest.name} verified; migrating (a failure is undone by {how})")
    return backup


def _migrate_in_transaction(
    run: _Run,
    plan: MigrationPlan,
    backup: BackupResult,
    run_migrate: Callable[[], None],
    progress: Progress | None,
    marker: Any,
) -> str | None:
    """The whole plan and the post-check in one transaction; any failure is a ROLLBACK.

    Returns None when committed, or RESTORE when the engine refused a statement inside the
    transaction (rolled back; the caller runs the plan again on the restore path).
    """
    adapter = get_adapter(run.alias)
    _begin_transaction(run, adapter, backup)
    failure, checking = _run_plan(run.alias, plan, run_migrate)
    failed_at = time.monotonic()
    ended = _commit_or_roll_back(run, plan, backup, adapter, failure=failure, checking=checking)
    if ended is None:
        return None
    failure, failed, back = ended
    return _after_rollback(
        run,
        backup,
        adapter,
        failure=failure,
        failed=failed,
        back=back,
        progress=progress,
        marker=marker,
        failed_at=failed_at,
    )


def _begin_transaction(run: _Run, adapter: VendorAdapter, backup: BackupResult) -> None:
    """BEGIN the migration's transaction; a refusal changes nothing and says why."""
    try:
        adapter.begin_migration()
    except KeyboardInterrupt:
        with interrupts.deferred():
            adapter.end_migration(commit=False)
        raise
    except DatabaseError as exc:
        with interrupts.deferred():
            run.record("refused", backup=backup, error=f"cannot start the migration's transaction: {exc}")
        raise MigrationFailed(
            f"could not start the migration's transaction on {adapter.database_name()} ({exc}); "
            "nothing was changed. Another process may hold a long write transaction: try again"
        ) from exc


def _run_plan(
    alias: str, plan: MigrationPlan, run_migrate: Callable[[], None]
) -> tuple[BaseException | None, bool]:
    """The plan and the post-check: (what failed, or None; whether the plan itself had run)."""
    checking = False
    try:
        run_migrate()
        checking = True
        _post_check(alias, plan)
    except BaseException as exc:  # noqa: BLE001 - whatever it is, it is a ROLLBACK
        return exc, checking
    return None, checking


def _commit_or_roll_back(
    run: _Run,
    plan: MigrationPlan,
    backup: BackupResult,
    adapter: VendorAdapter,
    *,
    failure: BaseException | None,
    checking: bool,
) -> tuple[BaseException, str, bool] | None:
    """COMMIT (None), or ROLLBACK: (the failure, the step that failed, whether the applied
    migrations read back as the backup's). Never cut in half by a signal."""
    failed = ""
    with interrupts.deferred() as held:  # a COMMIT or ROLLBACK is never cut in half
        if failure is None:
            try:
                adapter.end_migration(commit=True)
            except BaseException as exc:  # noqa: BLE001 - a failed COMMIT is rolled back
                failure, failed = exc, "the COMMIT"
            else:
                if held:
                    logger.warning("interrupt received while committing; the migration is committed")
                _applied(run, backup, rollback=TRANSACTION)
                return None
        failed = failed or _failed_step(run.alias, plan, checking=checking)
        try:
            adapter.end_migration(commit=False)
        except BaseException as exc:  # noqa: BLE001 - closing the connection ends it too
            logger.warning("ROLLBACK raised (%s); closing the connection to end the transaction", exc)
        connections[run.alias].close()
        clear_caches()
        try:
            back = adapter.applied_migrations() == backup.manifest.migrations
        except Exception as exc:  # noqa: BLE001 - unreadable: the restore path decides
            logger.error("cannot read the migrations back after ROLLBACK: %s", exc)
            back = False
    return failure, failed, back


def _after_rollback(
    run: _Run,
    backup: BackupResult,
    adapter: VendorAdapter,
    *,
    failure: BaseException,
    failed: str,
    back: bool,
    progress: Progress | None,
    marker: Any,
    failed_at: float,
) -> str:
    """RESTORE when the engine refused a statement inside the transaction; otherwise record the
    rollback and raise MigrationFailed (after a restore, if the ROLLBACK did not undo it all)."""
    reason = _reason(failure)
    if not back:
        # The engine did not undo everything (something committed on its own): restore.
        logger.error("after ROLLBACK the migrations differ from %s; restoring it", backup.manifest.name)
        _restore_after_failure(run, backup, progress=progress, failed=failed, reason=reason, marker=marker)
    if not isinstance(failure, KeyboardInterrupt) and adapter.refuses_transaction(failure):
        logger.warning("%s cannot run inside a transaction (%s); using the restore path", failed, reason)
        if progress:
            progress(
                f"{_upper_first(failed)} runs a statement that cannot be inside a transaction ({reason}); "
                "rolled back, nothing was written; migrating again with restore from the backup as undo"
            )
        return RESTORE
    logger.error("%s failed (%s); rolled back by the database transaction", failed, reason)
    logger.info(
        "undid the failed migration on %s in %.3fs (transaction)", run.alias, time.monotonic() - failed_at
    )
    with interrupts.deferred():
        interrupts.settle()
        run.record("rolled_back", backup=backup, error=f"{failed}: {reason}", rollback=TRANSACTION)
    raise MigrationFailed(
        f"{failed} failed ({reason}); rolled back by the database transaction — nothing "
        f"was written; the pre-migration backup {backup.manifest.name} is kept. {_next_step(reason)}"
    ) from failure


def _migrate_or_restore(
    run: _Run,
    plan: MigrationPlan,
    backup: BackupResult,
    run_migrate: Callable[[], None],
    progress: Progress | None,
    marker: Any,
) -> None:
    """The plan as Django runs it; a failure restores the pre-migration backup."""
    checking = False
    try:
        run_migrate()
        checking = True
        _post_check(run.alias, plan)
        with interrupts.deferred():
            _applied(run, backup, rollback=RESTORE)
    except BaseException as exc:  # noqa: BLE001 - whatever it is, it is undone
        with interrupts.deferred():  # a second Ctrl-C cannot cut the restore short
            failed = _failed_step(run.alias, plan, checking=checking)
            reason = _reason(exc)
            logger.error("%s failed (%s); restoring %s", failed, reason, backup.manifest.name)
            if progress:
                progress(f"{_upper_first(failed)} failed: restoring {backup.manifest.name}")
            _restore_after_failure(
                run, backup, progress=progress, failed=failed, reason=reason, marker=marker
            )


def _applied(run: _Run, backup: BackupResult, *, rollback: str) -> None:
    interrupts.settle()
    catalogue.sync_catalogue(alias=run.alias)  # the backup table may be new in this plan
    run.record("applied", backup=backup, rollback=rollback)


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _next_step(reason: str) -> str:
    """What to do after an undo: an interrupted migration is not a broken one."""
    if reason.startswith("interrupted ("):
        return "Run safemigrate again when you are ready"
    return "Fix the migration and run safemigrate again"


def _reason(exc: BaseException | None) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return _interrupted(exc)
    return (str(exc) or type(exc).__name__).strip()


def _restore_after_failure(
    run: _Run,
    backup: BackupResult,
    *,
    progress: Progress | None,
    failed: str,
    reason: str,
    marker: Any,
) -> NoReturn:
    """Restore the pre-migration backup, prove the database is back, and raise MigrationFailed.

    Nothing another connection committed after the backup is erased silently: unless the engine
    can tell nobody did, the failed database is kept (renamed or copied) and named. Signals are
    held for the whole restore, so a second Ctrl-C cannot cut it short (nor make a restore that
    went through look failed).
    """
    alias = run.alias
    name = backup.manifest.name
    started = time.monotonic()
    with interrupts.deferred():
        changed = get_adapter(alias).changed_since(marker)  # before the connection is closed
        connections[alias].close()  # a failed migration may leave a broken transaction behind
        try:
            result = restore_backup(
                backup=backup.manifest,
                alias=alias,
                safety_backup=False,
                progress=progress,
                keep_replaced=changed is not False,
            )
            if get_adapter(alias).applied_migrations() != backup.manifest.migrations:
                raise SafeMigrateError("the restored database's migrations differ from the backup's")
        except BaseException as exc:  # noqa: BLE001 - signals are held: this is a real failure
            interrupts.settle()
            logger.critical("ROLLBACK FAILED for %s: %s", alias, exc)
            run.record(
                "failed", backup=backup, error=f"{failed}: {reason}; rollback failed: {exc}", rollback=RESTORE
            )
            raise MigrationFailed(
                f"{failed} failed ({reason}) AND the automatic restore failed ({exc}); "
                f"restore by hand: manage.py restore {name} --no-safety-backup --noinput"
            ) from exc
        outcome, note = _kept_outcome(alias, name, result.kept)
        interrupts.settle()
        logger.info("undid the failed migration on %s in %.3fs (restore)", alias, time.monotonic() - started)
        run.record("rolled_back", backup=backup, error=f"{failed}: {reason}{note}", rollback=RESTORE)
        raise MigrationFailed(f"{failed} failed ({reason}); {outcome} {_next_step(reason)}")


def _kept_outcome(alias: str, name: str, kept: str | None) -> tuple[str, str]:
    """What the restore left (one sentence), and what the run's record adds (kept copy, dump).

    The kept copy is compared with the restored backup (safemigrate.changes): identical, it is
    dropped and nothing was lost; otherwise it stays, with the rows that differ in a dump.
    """
    if kept is None:  # the engine could tell that nobody else wrote
        return f"the database was restored from {name} and is as it was before.", ""
    from safemigrate.changes import compare_kept  # only here: every migrate imports this module

    restored = f"the database was restored from {name} (taken before the migration)"
    try:
        changes = compare_kept(alias=alias, kept=kept)
    except Exception as exc:  # noqa: BLE001 - then nothing is ruled out: the copy stays
        logger.error("cannot compare the kept failed database %s with %s: %s", kept, name, exc)
        return (
            f"{restored}; writes by other connections after the backup cannot be ruled out (the "
            f"failed database could not be compared with it: {_reason(exc)}), so the failed "
            f"database is kept as {kept}: copy any such rows from it, then drop it.",
            f"; the failed database is kept as {kept}",
        )
    if not changes.found:
        try:
            get_adapter(alias).drop_kept(kept)
        except Exception as exc:  # noqa: BLE001 - harmless: it holds nothing more than the backup
            logger.warning("could not drop the kept failed database %s (%s); drop it by hand", kept, exc)
            return (
                f"the database was restored from {name} and is as it was before; the failed "
                f"database holds no row written after the backup, so nothing was lost (drop {kept}).",
                f"; the failed database {kept} holds nothing more",
            )
        return (
            f"the database was restored from {name} and is as it was before; compared table by "
            "table, the failed database held no row written after the backup, so nothing was lost.",
            "",
        )
    for table in changes.tables:
        if table.deleted:
            logger.warning("rows deleted after the backup from %s (keys): %s", table.table, table.deleted)
    saved = f"the failed database is kept as {kept}"
    if changes.dump is not None:
        saved += (
            f" and its {changes.dumped} new and changed rows of the project's models are in "
            f"{changes.dump} (review, then load with manage.py loaddata {changes.dump}; after "
            "migrating if the fixed migration changes those models)"
        )
    if changes.not_dumped:
        saved += f"; the rows of {', '.join(changes.not_dumped)} are only in the kept copy"
    return (
        f"{restored}; rows differ from the backup, written after it by other connections or by "
        f"the failed migration itself ({changes.summary()}), so {saved}. Drop {kept} when done.",
        f"; the failed database is kept as {kept}"
        + (f", changed rows in {changes.dump}" if changes.dump else ""),
    )
