"""``safemigrate``: Django's migrate inside lock -> check -> verified backup -> post-check -> rollback."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from io import StringIO
from typing import Any

from django.core.management.base import CommandError, OutputWrapper
from django.core.management.commands.migrate import Command as MigrateCommand
from django.db import connections
from django.db.migrations.exceptions import InconsistentMigrationHistory, NodeNotFoundError
from django.db.migrations.executor import MigrationExecutor

from safemigrate import interrupts
from safemigrate.checks import health_checks_wanted
from safemigrate.conf import get_settings, is_test_database

# The library (sequence, plan, vendors) is imported on the guarded path only: the no-op migrate of
# every container start must cost what Django's own does.


class Command(MigrateCommand):
    risk_plan = True
    """``safemigrate --plan`` annotates risks; ``migrate --plan`` (migrate.py) prints Django's own plan."""
    migrating = False
    """Set once Django's migrate starts changing the database: what an interrupt message may claim."""
    """This run has a plan, so it takes a verified backup: W001 would only be noise."""

    help = (
        "Updates database schema safely: checks the database, takes a verified backup, migrates, "
        "checks again, and undoes a failure automatically (a transaction rollback where the "
        "engine allows it, else a restore of the backup)."
    )

    def add_arguments(self, parser: Any) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--no-backup",
            action="store_true",
            help="Migrate without safemigrate's checks, backup and rollback (explicit opt-out).",
        )

    def execute(self, *args: Any, **options: Any) -> Any:
        """Ctrl-C outside the guarded sequence (which undoes a migration itself) is one line too.

        One interruptible section over the whole command: once the outcome is settled (a COMMIT,
        or an undo) signals are held until the line that reports it is out.
        """
        self.migrating = False
        wanted = health_checks_wanted.set(False)  # W001/W002 are asked for elsewhere (checks.py)
        if getattr(self, "_called_from_command_line", False):  # run_from_argv: the process ends here
            interrupts.ignore_once_done()
        try:
            with interrupts.interruptible():
                return super().execute(*args, **options)
        except KeyboardInterrupt as exc:
            if self.migrating:  # an unguarded run (--no-backup, --fake, ...) or the bookkeeping after
                raise CommandError(
                    "interrupted after Django's migrate had started; `manage.py showmigrations` "
                    "shows what was applied",
                    returncode=130,
                ) from exc
            raise CommandError("interrupted before migrating; nothing was changed", returncode=130) from exc
        finally:
            health_checks_wanted.reset(wanted)

    def handle(self, *args: Any, **options: Any) -> None:
        database = options["database"]
        if (
            self.risk_plan
            and options["plan"]
            and options["verbosity"] >= 1
            and not options["check_unapplied"]
        ):
            self._refuse_like_django(*args, **options)
            self._print_risky_plan(database, options)
            return None
        unguarded = (
            options["no_backup"]
            or options["plan"]
            or options["check_unapplied"]
            or options["fake"]
            or options["fake_initial"]
            or options["prune"]
            or (is_test_database(database) and not get_settings().guard_test_databases)
        )
        if unguarded:
            self.migrating = not (options["plan"] or options["check_unapplied"])  # those only read
            super().handle(*args, **options)
            return None
        executor = None if options["app_label"] else self._executor_if_nothing_to_apply(database)
        if executor is not None:  # every container start: Django as usual, on the same plan
            self.migrating = True
            with _reusing(executor):
                super().handle(*args, **options)
            return None
        from safemigrate.exceptions import SafeMigrateError
        from safemigrate.management.base import command_error
        from safemigrate.sequence import safe_migrate

        def run_migrate() -> None:
            self.migrating = True
            try:
                super(Command, self).handle(*args, **options)
            except BaseException:
                self._close_line()  # before the library logs the failure on stderr
                raise

        progress = self.stdout.write if options["verbosity"] >= 1 else None
        try:
            result = safe_migrate(
                alias=database,
                run_migrate=run_migrate,
                app_label=options["app_label"],
                target=options["migration_name"],
                progress=progress,
                before_lock=lambda: self._refuse_like_django(*args, **options),
                clear_errors=(CommandError,),
            )
        except SafeMigrateError as exc:
            self._close_line()
            raise command_error(exc) from exc
        except (InconsistentMigrationHistory, NodeNotFoundError) as exc:  # a graph Django cannot build
            raise CommandError(str(exc)) from exc  # Django lets these out as a traceback
        except KeyboardInterrupt as exc:  # before any guarded step (the outcome settles signals)
            raise CommandError(
                f"interrupted ({exc or 'Ctrl-C'}); nothing was migrated", returncode=130
            ) from exc
        if result.backup is not None and options["verbosity"] >= 1:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Applied {len(result.plan)} migration(s) safely in {result.duration:.2f}s; "
                    f"backup {result.backup.manifest.name}"
                )
            )
        return None

    def _executor_if_nothing_to_apply(self, database: str) -> MigrationExecutor | None:
        """Django's executor for ``database`` if a plain ``migrate`` has nothing to apply, else None.

        Django's migrate then runs on this same executor (``_reusing``): the plan is computed
        once, and what Django runs is exactly the empty plan seen here, never a plan that
        another process made non-empty in between.
        """
        try:
            executor = MigrationExecutor(connections[database], self.migration_progress_callback)  # type: ignore[arg-type]
            if executor.migration_plan(executor.loader.graph.leaf_nodes()):
                return None
        except Exception:  # noqa: BLE001 - a broken graph or database: the guarded path reports it
            return None
        return executor

    open_line = False
    """Django printed "  Applying X..." and not yet " OK": a failure must not continue that line."""

    def migration_progress_callback(self, action: str, migration: Any = None, fake: bool = False) -> None:
        super().migration_progress_callback(action, migration, fake)
        self.open_line = self.verbosity >= 1 and action.endswith("_start")

    def _close_line(self) -> None:
        """End Django's "  Applying X..." with FAILED, so what follows gets a line of its own."""
        if self.open_line:
            self.open_line = False
            self.stdout.write(self.style.ERROR(" FAILED"))

    def _refuse_like_django(self, *args: Any, **options: Any) -> None:
        """Django's own refusals, in its words, before the lock and the backup.

        Conflicts, inconsistent history, an unknown app or target, ``--run-syncdb`` on an app with
        migrations: Django's ``--plan`` pass checks all of them and changes nothing, so it is run
        with its output discarded rather than copied here.
        """
        stdout, self.stdout = self.stdout, OutputWrapper(StringIO())
        try:
            super().handle(*args, **{**options, "plan": True, "check_unapplied": False, "prune": False})
        except (InconsistentMigrationHistory, NodeNotFoundError) as exc:
            raise CommandError(str(exc)) from exc  # Django lets these out as a traceback
        finally:
            self.stdout = stdout

    def _print_risky_plan(self, database: str, options: dict[str, Any]) -> None:
        from safemigrate.plan import pending_plan
        from safemigrate.vendors import get_adapter
        from safemigrate.vendors.base import TRANSACTION

        try:
            plan = pending_plan(
                alias=database, app_label=options["app_label"], target=options["migration_name"]
            )
        except Exception as exc:
            raise CommandError(f"cannot compute the migration plan: {exc}") from exc
        self.stdout.write(self.style.MIGRATE_HEADING("Planned operations:"))
        if plan.is_empty:
            self.stdout.write("  No planned migration operations.")
            return
        kind = get_adapter(database).rollback_kind(plan)
        for step in plan.steps:
            risks = sorted(step.risks)
            flag = f"  [{', '.join(risks)}]" if risks else ""
            direction = "Unapply" if step.backwards else "Apply"
            self.stdout.write(self.style.MIGRATE_LABEL(f"{direction} {step.label}") + flag)
            if step.needs_autocommit:
                self.stdout.write("    (SQL that cannot run in a transaction: undone from the backup)")
            elif not step.atomic and kind == TRANSACTION:
                self.stdout.write("    (non-atomic, yet inside the plan's one transaction on this database)")
            elif not step.atomic:
                self.stdout.write("    (non-atomic: a failure half-way is undone from the backup)")
            for op in step.operations:
                mark = f"  [{', '.join(op.risks)}]" if op.risks else ""
                self.stdout.write(f"    {op.description}{mark}")
        if kind == TRANSACTION:
            self.stdout.write(
                "Rollback: database transaction. A verified backup is taken before these run and "
                "kept; they run in one transaction, so any failure is rolled back by the database."
            )
        else:
            self.stdout.write(
                "Rollback: restore from backup. "
                "A verified backup is taken before these run; any failure restores it automatically."
            )


@contextlib.contextmanager
def _reusing(executor: MigrationExecutor) -> Iterator[None]:
    """Django's migrate command builds its executor by name: hand it ``executor`` instead."""
    module = sys.modules[MigrateCommand.__module__]
    built = module.MigrationExecutor
    module.MigrationExecutor = lambda connection, progress_callback=None: executor  # type: ignore[attr-defined]
    try:
        yield
    finally:
        module.MigrationExecutor = built  # type: ignore[attr-defined]
