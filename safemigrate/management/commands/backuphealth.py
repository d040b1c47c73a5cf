"""``backuphealth``: the health endpoint's report on the command line; exit 1 when unhealthy."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.db import connections

from safemigrate import signals
from safemigrate.health import backup_health, health_report
from safemigrate.management.base import SafeMigrateCommand
from safemigrate.units import human_size


class Command(SafeMigrateCommand):
    help = (
        "Reports the newest verified backup, the last migration run, unapplied migrations, free "
        "space and the last off-site copy; exits 1 when the backups are not safe (warnings: exit 0)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--database",
            choices=tuple(connections),
            help="Only this database (default: every database).",
        )
        parser.add_argument(
            "--notify",
            action="store_true",
            help="Also send the backups_stale event (notifications) when a monitor finds a problem; "
            "for a cron job.",
        )
        self.add_format_argument(parser)

    def handle(self, *args: Any, database: str | None, notify: bool, format: str, **options: Any) -> None:
        aliases = [database] if database else list(connections)
        report = health_report(aliases=aliases)
        if format == "json":
            self.write_json(report)
        for each in report["databases"]:
            alias = each["database"]
            problems = backup_health(alias=alias).problems if (notify or format == "text") else []
            if notify and problems:
                signals.send(signals.backups_stale, alias=alias, problems=problems)
            if format == "text":
                self._describe(each, [f"{p.id}: {p.message}" for p in problems])
        if not report["healthy"]:
            names = ", ".join(d["database"] for d in report["databases"] if not d["healthy"])
            raise CommandError(f"unhealthy: {names} (see the report above)")

    def _describe(self, each: dict[str, Any], problems: list[str]) -> None:
        newest = each["newest_verified_backup"]
        run = each["last_migration_run"]
        free = each["backup_folder_free_bytes"]
        unapplied = each["unapplied_migrations"]
        lines = [
            f"Database {each['database']!r}: {'healthy' if each['healthy'] else 'NEEDS ATTENTION'}",
            "  newest verified backup: "
            + (f"{newest['name']} ({newest['age_hours']:.1f} hours old)" if newest else "none"),
            "  last migration run: " + (f"{run['status']} at {run['started']}" if run else "none recorded"),
            "  unapplied migrations: " + ("unknown" if unapplied is None else str(unapplied)),
            f"  backups: {human_size(each['backups_total_bytes'])}; free in the backup folder: "
            + (human_size(free) if free is not None else "unknown"),
            f"  last off-site copy: {each['last_offsite_copy'] or 'never'}",
        ]
        lines += [f"  {line}" for line in problems]
        for line in lines:
            self.stdout.write(line)
