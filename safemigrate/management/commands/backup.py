"""``backup``: an on-demand verified backup (optionally with, or only, a portable JSON dump)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.management.base import CommandError

from safemigrate.management.base import SafeMigrateCommand, describe_backup
from safemigrate.units import human_size

if TYPE_CHECKING:
    from safemigrate.jsondump import JsonDumpResult

# The library is imported where a branch needs it: the JSON dump (~45 ms of imports) and the
# off-site copy only when asked for, so a plain backup starts as fast as Django does.


class Command(SafeMigrateCommand):
    help = "Makes a verified, compressed, checksummed backup of the database."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--reason", default="manual", help="Why (becomes part of the name).")
        json_group = parser.add_mutually_exclusive_group()
        json_group.add_argument(
            "--with-json",
            action="store_true",
            help="Also write a portable JSON dump (loaddata's format), listed in the manifest.",
        )
        json_group.add_argument(
            "--json-only",
            action="store_true",
            help="Write only the portable JSON dump, no database backup.",
        )
        parser.add_argument(
            "--offsite",
            action="store_true",
            help="Copy the backup to SAFEMIGRATE_STORAGE now and wait for it (otherwise the copy "
            "is queued when SAFEMIGRATE_STORAGE is set).",
        )
        self.add_database_argument(parser)
        self.add_format_argument(parser)

    def handle(
        self,
        *args: Any,
        database: str,
        reason: str,
        format: str,
        with_json: bool = False,
        json_only: bool = False,
        offsite: bool = False,
        **options: Any,
    ) -> None:
        from safemigrate.backup import create_backup

        if with_json or json_only:
            from safemigrate.jsondump import create_json_dump
        if offsite:
            from safemigrate.offsite import copy_offsite, get_storage

            if json_only:
                raise CommandError("--offsite copies a backup; it does not go with --json-only")
            get_storage()  # fail before backing up when there is nowhere to copy to
        if json_only:
            only = create_json_dump(alias=database, reason=reason, progress=self.progress)
            if format == "json":
                self.write_json(only.as_json())
                return
            self._describe_dump(only)
            self.stdout.write(self.style.SUCCESS(f"JSON dump done in {only.duration:.2f}s"))
            return
        result = create_backup(alias=database, reason=reason, progress=self.progress)
        manifest = result.manifest
        dump: JsonDumpResult | None = None
        if with_json:
            dump = create_json_dump(alias=database, backup=manifest, progress=self.progress)
            manifest = dump.backup or manifest
        copied = None
        if offsite:
            copied = copy_offsite(manifest=manifest)
            manifest = copied.manifest
        if format == "json":
            self.write_json(manifest.as_json(id=result.id))
            return
        for line in describe_backup(manifest, result.id):
            self.stdout.write(line)
        if dump is not None:
            self._describe_dump(dump)
        if copied is not None:
            self.stdout.write(
                f"Off-site: {len(copied.names)} object(s) in storage {copied.storage!r} "
                f"({'sha256 read back' if copied.sha256_checked else 'sizes read back'})"
            )
        duration = result.duration + (dump.duration if dump else 0.0)
        self.stdout.write(self.style.SUCCESS(f"Backup done in {duration:.2f}s"))

    def _describe_dump(self, dump: JsonDumpResult) -> None:
        self.stdout.write(f"JSON:     {dump.path}")
        self.stdout.write(
            f"          {human_size(dump.size)} ({dump.size:,} bytes; {human_size(dump.raw_size)} "
            f"of JSON), {dump.rows:,} rows in {len(dump.models)} models, sha256 {dump.sha256}"
        )
