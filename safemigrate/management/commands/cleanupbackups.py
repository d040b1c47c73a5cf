"""``cleanupbackups``: rotation, now (it also runs as a task after each migration)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from safemigrate.management.base import SafeMigrateCommand
from safemigrate.rotation import rotate_backups


class Command(SafeMigrateCommand):
    help = (
        "Deletes old backups beyond --keep (default SAFEMIGRATE_KEEP) per reason class; "
        "never pinned ones or the newest verified. Also removes leftovers of interrupted runs."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--keep", type=int, default=None, help="How many to keep.")
        parser.add_argument("--dry-run", action="store_true", help="Only say what would go.")
        self.add_database_argument(parser)
        self.add_format_argument(parser)

    def handle(
        self,
        *args: Any,
        keep: int | None,
        dry_run: bool,
        database: str,
        format: str,
        **options: Any,
    ) -> None:
        if keep is not None and keep < 1:
            raise CommandError("--keep must be at least 1")
        result = rotate_backups(alias=database, keep=keep, dry_run=dry_run)
        if format == "json":
            self.write_json(
                {
                    "deleted": result.deleted,
                    "kept": result.kept,
                    "dry_run": dry_run,
                    "swept": result.swept,
                }
            )
            return
        for name in result.swept:
            self.stdout.write(f"Removed {name} (left behind by an interrupted run)")
        verb = "Would delete" if dry_run else "Deleted"
        for name in result.deleted:
            self.stdout.write(f"{verb} {name}")
        self.stdout.write(f"{verb} {len(result.deleted)} backup(s); {len(result.kept)} kept.")
