"""``backups``: the catalogue of backups (from the folder's manifests; ``--rescan`` resyncs the table)."""

from __future__ import annotations

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
        self.sweep_leftovers(alias=alias)
        if rescan:
            summary = catalogue.sync_catalogue(alias=alias)
            if format == "text":
                self.stdout.write(
                    f"Catalogue rebuilt: {summary['listed']} backup(s) listed, "
                    f"{summary['removed']} stale row(s) removed, "
                    f"{summary['runs']} migration run(s) added from the journal."
                )
        if format == "json":
            ids = catalogue.catalogue_ids()
            self.write_json([m.as_json(id=ids.get(m.name)) for m in catalogue.list_backups(alias=alias)])
            return
        self.write_backup_list(alias=alias)

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
