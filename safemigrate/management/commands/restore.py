"""``restore``: put a backup back, after checking it and taking a safety backup of the current state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from safemigrate import catalogue
from safemigrate.jsondump import load_json_dump
from safemigrate.management.base import SafeMigrateCommand
from safemigrate.manifest import Manifest
from safemigrate.restore import (
    RestorePreview,
    check_engine,
    manifest_for_file,
    restore_backup,
    restore_preview,
)
from safemigrate.units import human_size

MAX_TABLES = 20
"""Tables listed in the preview; the rest are counted."""
UNKNOWN = "unknown — no manifest"


def _rows(count: int | None) -> str:
    return "no table" if count is None else f"{count:,} rows"


class Command(SafeMigrateCommand):
    help = (
        "Restores the database from a backup (by id or name, --latest, or --file PATH). "
        "Checks the checksum first and takes a safety backup of the current state."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("backup", nargs="?", help="Backup id or name (see `backups`).")
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--list", action="store_true", help="List restorable backups.")
        group.add_argument("--latest", action="store_true", help="The newest verified backup.")
        group.add_argument("--file", help="A backup file (its manifest beside it, if it has one).")
        group.add_argument(
            "--from-storage",
            metavar="NAME",
            help="Fetch backup NAME from SAFEMIGRATE_STORAGE (see `backups --offsite`) into the "
            "backup folder, check it, then restore it.",
        )
        group.add_argument(
            "--json",
            metavar="FILE",
            help="Load a JSON dump (from backup --with-json/--json-only) into a migrated database; "
            "moves data across engines.",
        )
        parser.add_argument(
            "--replace",
            action="store_true",
            help="With --json: replace the data already in the database (after a safety backup).",
        )
        parser.add_argument(
            "--no-safety-backup",
            action="store_true",
            help="Do not back up the current database first (e.g. when it is damaged).",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="With --noinput: restore even when the backup raises warnings.",
        )
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Do not prompt for confirmation.",
        )
        self.add_database_argument(parser)

    def handle(
        self,
        *args: Any,
        backup: str | None,
        list: bool,
        latest: bool,
        file: str | None,
        no_safety_backup: bool,
        force: bool,
        interactive: bool,
        database: str,
        **options: Any,
    ) -> None:
        if list:
            from django.core.management import call_command

            call_command("backups", database=database, stdout=self.stdout)
            return
        if options.get("json"):
            if backup:
                raise CommandError("give a backup id/name or --json, not both")
            self._load_json(
                Path(options["json"]),
                database=database,
                replace=options.get("replace", False),
                safety_backup=not no_safety_backup,
                interactive=interactive,
            )
            return
        if options.get("replace"):
            raise CommandError("--replace goes with --json FILE")
        if options.get("from_storage"):
            if backup:
                raise CommandError("give a backup id/name or --from-storage NAME, not both")
            from safemigrate.offsite import fetch_offsite

            manifest = fetch_offsite(name=options["from_storage"], alias=database)
            self.stdout.write(f"Fetched {manifest.name} into {manifest.file_path.parent}")
        else:
            manifest = self._choose(backup, latest, file, database)
        check_engine(manifest, alias=database)  # before any advice: no flag makes it fit
        preview = restore_preview(backup=manifest, alias=database)
        self._describe(preview, database=database)
        if preview.current_error:
            self.stdout.write(f"  note: {preview.current_error}")
        for warning in preview.warnings:
            self.stderr.write(self.style.WARNING(f"  warning: {warning}"))
        if not no_safety_backup:
            self.stdout.write("  A safety backup of the current database is taken first.")
        if interactive:
            answer = input("Type 'yes' to restore, anything else to cancel: ")
            if answer.strip() != "yes":
                raise CommandError("restore cancelled; nothing was changed")
        elif preview.warnings and not force:
            raise CommandError(f"restore refused: {preview.warnings[0]}; check the backup, then add --force")
        result = restore_backup(
            backup=manifest,
            alias=database,
            safety_backup=not no_safety_backup,
            progress=self.stdout.write if options["verbosity"] >= 1 else None,
        )
        if result.safety_backup:
            self.stdout.write(f"Safety backup of the previous state: {result.safety_backup.manifest.name}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored {manifest.name} in {result.duration:.2f}s "
                f"({sum(result.row_counts.values()):,} rows)."
            )
        )
        if result.unapplied:
            self.stdout.write(
                self.style.WARNING(
                    f"The restored database lacks {len(result.unapplied)} migration(s) of this code "
                    f"({', '.join(result.unapplied[:3])}{', …' if len(result.unapplied) > 3 else ''}): "
                    "run `python manage.py migrate` now, before the site serves requests."
                )
            )

    def _describe(self, preview: RestorePreview, *, database: str) -> None:
        """What the restore will change; what a file without a manifest cannot tell, said so."""
        manifest = preview.manifest
        when = manifest.created[:19].replace("T", " ") + " UTC"
        if not preview.known:
            self.stdout.write(
                f"Restore {manifest.name} ({human_size(manifest.size)}; no manifest; file modified {when})"
            )
            self.stdout.write(f"  into database {database!r}")
            self.stdout.write(f"  migrations in the file: {UNKNOWN}")
            self.stdout.write(f"  rows in the file: {UNKNOWN}")
            self.stdout.write(
                f"  checksum: {UNKNOWN}; the file is checked as it is unpacked (a sound database)"
            )
            return
        self.stdout.write(f"Restore {manifest.name} (made {when}, {human_size(manifest.size)})")
        self.stdout.write(f"  into database {database!r}")
        if preview.to_unapply:
            self.stdout.write(f"  migrations that will be un-applied: {', '.join(preview.to_unapply)}")
            if preview.migrate_after == preview.to_unapply:
                self.stdout.write("  (this code has them: run migrate after the restore)")
            elif preview.migrate_after:
                self.stdout.write(
                    f"  (this code has {', '.join(preview.migrate_after)}: run migrate after the restore)"
                )
        if preview.to_reapply:
            self.stdout.write(f"  migrations that will be applied again: {', '.join(preview.to_reapply)}")
        changed = [(t, then, now) for t, then, now in preview.row_counts if then != now]
        for table, then, now in changed[:MAX_TABLES]:
            self.stdout.write(f"  {table}: {_rows(now)} now -> {_rows(then)} after restore")
        if len(changed) > MAX_TABLES:
            self.stdout.write(f"  … and {len(changed) - MAX_TABLES} more tables")

    def _load_json(
        self, path: Path, *, database: str, replace: bool, safety_backup: bool, interactive: bool
    ) -> None:
        if replace and interactive:
            self.stdout.write(
                f"Replace every row in database {database!r} with the data in {path.name}"
                + (" (a safety backup is taken first)." if safety_backup else ".")
            )
            answer = input("Type 'yes' to continue, anything else to cancel: ")
            if answer.strip() != "yes":
                raise CommandError("restore cancelled; nothing was changed")
        result = load_json_dump(
            path=path,
            alias=database,
            replace=replace,
            safety_backup=safety_backup,
            progress=self.progress,
        )
        if result.safety_backup:
            self.stdout.write(f"Safety backup of the previous state: {result.safety_backup.manifest.name}")
        width = max((len(label) for label in result.models), default=0)
        for label, rows in result.models.items():
            self.stdout.write(f"  {label:<{width}}  {rows:>12,}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Loaded {path.name} into {database!r} in {result.duration:.2f}s "
                f"({result.rows:,} rows in {len(result.models)} models)."
            )
        )

    def _choose(self, backup: str | None, latest: bool, file: str | None, database: str) -> Manifest:
        if file:
            if backup:
                raise CommandError("give a backup id/name or --file, not both")
            return manifest_for_file(Path(file), alias=database)
        if latest:
            if backup:
                raise CommandError("give a backup id/name or --latest, not both")
            return catalogue.latest_backup(alias=database)
        if not backup:
            raise CommandError(
                "which backup? give an id or name (see `manage.py restore --list`), --latest or --file PATH"
            )
        return catalogue.find_backup(backup, alias=database)
