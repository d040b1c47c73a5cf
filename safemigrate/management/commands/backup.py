"""``backup``: an on-demand verified backup."""

from __future__ import annotations

from typing import Any

from safemigrate.backup import create_backup
from safemigrate.management.base import SafeMigrateCommand, describe_backup


class Command(SafeMigrateCommand):
    help = "Makes a verified, compressed, checksummed backup of the database."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--reason", default="manual", help="Why (becomes part of the name).")
        self.add_database_argument(parser)
        self.add_format_argument(parser)

    def handle(self, *args: Any, database: str, reason: str, format: str, **options: Any) -> None:
        result = create_backup(alias=database, reason=reason, progress=self.progress)
        if format == "json":
            self.write_json(result.manifest.as_json(id=result.id))
            return
        for line in describe_backup(result.manifest, result.id):
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS(f"Backup done in {result.duration:.2f}s"))
