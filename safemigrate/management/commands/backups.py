"""``backups``: the catalogue of backups (from the folder's manifests; ``--rescan`` resyncs the table)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from safemigrate import catalogue
from safemigrate.management.base import SafeMigrateCommand
from safemigrate.units import human_size


class Command(SafeMigrateCommand):
    help = "Lists backups, newest first. --rescan rebuilds the catalogue table from the folder."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--rescan", action="store_true", help="Rebuild the catalogue from the manifests.")
        parser.add_argument(
            "--all-databases", action="store_true", help="List backups of every database alias."
        )
        parser.add_argument(
            "--offsite",
            action="store_true",
            help="List the backups in SAFEMIGRATE_STORAGE instead of the local folder.",
        )
        self.add_database_argument(parser)
        self.add_format_argument(parser)

    def handle(
        self,
        *args: Any,
        database: str,
        rescan: bool,
        all_databases: bool,
        format: str,
        offsite: bool = False,
        **options: Any,
    ) -> None:
        alias = None if all_databases else database
        if offsite:
            self._list_offsite(alias=alias, format=format)
            return
        # Files of killed runs (plaintext copies among them): gone, and said so (on stderr, so
        # --format json stays one array).
        for name in catalogue.sweep_leftover_files(alias=alias):
            self.stderr.write(f"Removed {name}, left behind by an interrupted run")
        if rescan:
            summary = catalogue.sync_catalogue(alias=alias)
            if format == "text":
                self.stdout.write(
                    f"Catalogue rebuilt: {summary['listed']} backup(s) listed, "
                    f"{summary['removed']} stale row(s) removed, "
                    f"{summary['runs']} migration run(s) added from the journal."
                )
        backups = catalogue.list_backups(alias=alias)
        ids = catalogue.catalogue_ids()
        if format == "json":
            self.write_json([m.as_json(id=ids.get(m.name)) for m in backups])
            return
        if not backups:
            self.stdout.write("No backups yet. Make one with: python manage.py backup")
            return
        header = f"{'ID':>5}  {'CREATED (UTC)':19}  {'REASON':12}  {'SIZE':>9}  {'VERIFIED':8}  NAME"
        self.stdout.write(header)
        for m in backups:
            backup_id = ids.get(m.name)
            pin = " pin" if m.pinned else ""
            if not pin and m.pinned_until and datetime.fromisoformat(m.pinned_until) > datetime.now(UTC):
                pin = f" pin until {m.pinned_until[:10]}"
            flags = ("yes" if m.verified else "no") + pin
            missing = "" if m.file_path.is_file() else "  (FILE MISSING)"
            self.stdout.write(
                f"{backup_id if backup_id else '-':>5}  {m.created[:19].replace('T', ' '):19}  "
                f"{m.reason[:12]:12}  {human_size(m.size):>9}  {flags:8}  {m.name}{missing}"
            )

    def _list_offsite(self, *, alias: str | None, format: str) -> None:
        from safemigrate.offsite import get_storage, list_offsite

        storage, _ = get_storage()
        remote = list_offsite(alias=alias)
        if format == "json":
            self.write_json([b.as_json() for b in remote])
            return
        if not remote:
            self.stdout.write(f"No backups in storage {storage!r} yet.")
            return
        self.stdout.write(f"Storage {storage!r}:")
        self.stdout.write(f"{'CREATED (UTC)':19}  {'REASON':12}  {'SIZE':>9}  NAME")
        for b in remote:
            size = human_size(b.size) if b.size is not None else "-"
            missing = "" if b.size is not None else "  (FILE MISSING)"
            self.stdout.write(
                f"{b.created[:19].replace('T', ' '):19}  {b.reason[:12]:12}  {size:>9}  {b.name}{missing}"
            )
