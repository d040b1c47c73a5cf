"""``safemigrate``: Django's migrate inside lock -> check -> verified backup -> post-check -> rollback."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.core.management.commands.migrate import Command as MigrateCommand

from safemigrate import interrupts
from safemigrate.exceptions import SafeMigrateError
from safemigrate.management.base import command_error
from safemigrate.plan import pending_plan
from safemigrate.sequence import SafeMigrateResult, safe_migrate
from safemigrate.vendors import get_adapter
from safemigrate.vendors.base import TRANSACTION


class Command(MigrateCommand):
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

    def handle(self, *args: Any, **options: Any) -> None:
        database = options["database"]
        if options["plan"] and options.get("verbosity", 1) >= 1 and not options["check_unapplied"]:
            self._print_risky_plan(database, options)
            return None
        unguarded = (
            options["no_backup"]
            or options["plan"]
            or options["check_unapplied"]
            or options["fake"]
            or options["fake_initial"]
            or options["prune"]
        )
        if unguarded:
            return super().handle(*args, **options)

        def run_migrate() -> None:
            super(Command, self).handle(*args, **options)

        def queue_rotation(alias: str) -> None:
            from safemigrate.tasks import queue_after_migrate

            queue_after_migrate(alias)

        progress = self.stdout.write if options["verbosity"] >= 1 else None
        try:
            result = safe_migrate(
                alias=database,
                run_migrate=run_migrate,
                app_label=options["app_label"],
                target=options["migration_name"],
                progress=progress,
                after_success=queue_rotation,
            )
        except SafeMigrateError as exc:
            raise command_error(exc) from exc
        except KeyboardInterrupt as exc:  # before any guarded step (the outcome settles signals)
            raise CommandError(
                f"interrupted ({exc or 'Ctrl-C'}); nothing was migrated", returncode=130
            ) from exc
        self._report(result, database, verbosity=options["verbosity"])
        return None

    def execute(self, *args: Any, **options: Any) -> Any:
        # One interruptible section over the whole command: once the outcome is settled (a
        # COMMIT, or an undo) signals are held until the line that reports it is out.
        with interrupts.interruptible():
            return super().execute(*args, **options)

    def _report(self, result: SafeMigrateResult, database: str, *, verbosity: int) -> None:
        if result.backup is not None:
            from safemigrate.tasks import queue_offsite_copy

            queue_offsite_copy(alias=database, name=result.backup.manifest.name)
        if result.backup is not None and verbosity >= 1:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Applied {len(result.plan)} migration(s) safely in {result.duration:.2f}s; "
                    f"backup {result.backup.manifest.name}"
                )
            )

    def _print_risky_plan(self, database: str, options: dict[str, Any]) -> None:
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
