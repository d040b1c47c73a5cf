"""``verifybackup``: checksum + restore into a scratch copy + integrity check."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from safemigrate import catalogue
from safemigrate.exceptions import SafeMigrateError
from safemigrate.management.base import SafeMigrateCommand
from safemigrate.restore import verify_backup


class Command(SafeMigrateCommand):
    help = "Verifies backups: checksum, a restore into a scratch copy, and an integrity check."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("backup", nargs="?", help="Backup id or name.")
        parser.add_argument("--all", action="store_true", help="Verify every backup.")
        parser.add_argument(
            "--trust-file",
            action="store_true",
            help="Verify a PostgreSQL/MariaDB backup this installation did not make (its SQL runs on "
            "the live server in a scratch database).",
        )
        self.add_database_argument(parser)
        self.add_format_argument(parser)

    def handle(
        self,
        *args: Any,
        backup: str | None,
        all: bool,
        database: str,
        format: str,
        trust_file: bool = False,
        **options: Any,
    ) -> None:
        if bool(backup) == all:
            raise CommandError("give one backup id/name, or --all")
        targets = (
            catalogue.list_backups(alias=database)
            if all
            else [catalogue.find_backup(backup or "", alias=database)]
        )
        results = []
        for manifest in targets:
            try:
                verify_backup(backup=manifest, alias=database, trust_file=trust_file)
            except SafeMigrateError as exc:
                results.append({"name": manifest.name, "ok": False, "error": str(exc)})
                if format == "text":
                    self.stdout.write(self.style.ERROR(f"FAILED  {manifest.name}: {exc}"))
            else:
                results.append({"name": manifest.name, "ok": True, "error": None})
                if format == "text":
                    self.stdout.write(self.style.SUCCESS(f"OK      {manifest.name}"))
        if format == "json":
            self.write_json(results)
        failed = [r for r in results if not r["ok"]]
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(results)} backup(s) failed verification; do not rely on them",
                returncode=1,
            )
