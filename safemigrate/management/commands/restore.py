"""``restore``: put a backup back, after checking it and taking a safety backup of the current state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from safemigrate.management.base import SafeMigrateCommand
from safemigrate.manifest import Manifest
from safemigrate.restore import RestorePreview, RestoreResult, check_engine, restore_backup, restore_preview
from safemigrate.selection import choose_backup
from safemigrate.units import human_size

MAX_TABLES = 20
"""Tables listed in the preview; the rest are counted."""
UNKNOWN = "unknown — no manifest"


def _rows(count: int | None) -> str:
    return "no table" if count is None else f"{count:,} rows"


def _conflict(
    *,
    backup: str | None,
    json: str | None,
    replace: bool,
    from_storage: str | None,
    file: str | None,
    latest: bool,
) -> str | None:
    """Why these options do not go together, if they do not (argparse's group covers the rest)."""
    sources = [
        ("--json", json),
        ("--from-storage NAME", from_storage),
        ("--file", file),
        ("--latest", latest),
    ]
    chosen = [flag for flag, given in sources if given]
    if replace and not json:
        return "--replace goes with --json FILE"
    if backup and chosen:
        return f"give a backup id/name or {chosen[0]}, not both"
    return None


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
        json: str | None = None,
        replace: bool = False,
        from_storage: str | None = None,
        **options: Any,
    ) -> None:
        if list:
            self.sweep_leftovers(alias=database)
            self.write_backup_list(alias=database)
            return
        refusal = _conflict(
            backup=backup, json=json, replace=replace, from_storage=from_storage, file=file, latest=latest
        )
        if refusal:
            raise CommandError(refusal)
        if json:
            self._load_json(
                Path(json),
                database=database,
                replace=replace,
                safety_backup=not no_safety_backup,
                interactive=interactive,
            )
            return
        if from_storage:
            manifest = self._fetch(from_storage, database=database)
        else:
            manifest = choose_backup(alias=database, ref=backup, latest=latest, file=file)
        check_engine(manifest, alias=database)  # before any advice: no flag makes it fit
        preview = restore_preview(backup=manifest, alias=database)
        self._describe(preview, database=database, safety_backup=not no_safety_backup)
        self._confirm(preview, interactive=interactive, force=force)
        result = restore_backup(
            backup=manifest,
            alias=database,
            safety_backup=not no_safety_backup,
            progress=self.stdout.write if options["verbosity"] >= 1 else None,
        )
        self._report(result)

    def _fetch(self, name: str, *, database: str) -> Manifest:
        from safemigrate.offsite import fetch_offsite

        manifest = fetch_offsite(name=name, alias=database)
        self.stdout.write(f"Fetched {manifest.name} into {manifest.file_path.parent}")
        return manifest

    def _describe(self, preview: RestorePreview, *, database: str, safety_backup: bool) -> None:
        """What the restore will change, and why to doubt it; what a file without a manifest cannot
        tell, said so."""
        self._describe_changes(preview, database=database)
        if preview.current_error:
            self.stdout.write(f"  note: {preview.current_error}")
        for warning in preview.warnings:
            self.stderr.write(self.style.WARNING(f"  warning: {warning}"))
        if safety_backup:
            self.stdout.write("  A safety backup of the current database is taken first.")

    def _describe_changes(self, preview: RestorePreview, *, database: str) -> None:
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
        changed = preview.changed_tables
        for table, then, now in changed[:MAX_TABLES]:
            self.stdout.write(f"  {table}: {_rows(now)} now -> {_rows(then)} after restore")
        if len(changed) > MAX_TABLES:
            self.stdout.write(f"  … and {len(changed) - MAX_TABLES} more tables")

    def _confirm(self, preview: RestorePreview, *, interactive: bool, force: bool) -> None:
        """flush-style "Type 'yes'"; without a prompt, a warning refuses unless --force."""
        if interactive:
            answer = input("Type 'yes' to restore, anything else to cancel: ")
            if answer.strip() != "yes":
                raise CommandError("restore cancelled; nothing was changed")
        elif preview.warnings and not force:
            raise CommandError(f"restore refused: {preview.warnings[0]}; check the backup, then add --force")

    def _report(self, result: RestoreResult) -> None:
        if result.safety_backup:
            self.stdout.write(f"Safety backup of the previous state: {result.safety_backup.manifest.name}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored {result.manifest.name} in {result.duration:.2f}s "
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

    def _load_json(
        self, path: Path, *, database: str, replace: bool, safety_backup: bool, interactive: bool
    ) -> None:
        from safemigrate.jsondump import load_json_dump

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
