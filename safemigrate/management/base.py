"""What every safemigrate command shares: one place that turns library errors into CommandError."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from safemigrate import interrupts
from safemigrate.exceptions import SafeMigrateError
from safemigrate.manifest import Manifest
from safemigrate.units import human_size


def command_error(exc: SafeMigrateError) -> CommandError:
    return CommandError(str(exc), returncode=exc.returncode)


class SafeMigrateCommand(BaseCommand):
    """A BaseCommand whose expected failures end in one clear line and a non-zero exit."""

    def execute(self, *args: Any, **options: Any) -> Any:
        self.verbosity = options.get("verbosity", 1)
        try:
            with interrupts.interruptible():  # SIGTERM (docker stop) cleans up like Ctrl-C
                return super().execute(*args, **options)
        except SafeMigrateError as exc:
            raise command_error(exc) from exc
        except KeyboardInterrupt as exc:
            raise CommandError("interrupted; nothing was left half-done", returncode=130) from exc

    def add_database_argument(self, parser: Any) -> None:
        parser.add_argument(
            "--database",
            default="default",
            choices=tuple(connections),
            help='The database to work on. Defaults to the "default" database.',
        )

    def add_format_argument(self, parser: Any) -> None:
        parser.add_argument("--format", choices=("text", "json"), default="text", help="Output format.")

    verbosity = 1

    def progress(self, message: str) -> None:
        """Progress lines go to stderr, so --format json output on stdout stays parseable."""
        if self.verbosity >= 1:
            self.stderr.write(message, style_func=lambda m: m)

    def write_json(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, indent=2, default=str))

    def sweep_leftovers(self, *, alias: str | None) -> None:
        """Files of killed runs (plaintext copies among them): gone, and said so (on stderr, so
        --format json stays one array)."""
        from safemigrate import catalogue

        for name in catalogue.sweep_leftover_files(alias=alias):
            self.stderr.write(f"Removed {name}, left behind by an interrupted run")

    def write_backup_list(self, *, alias: str | None) -> None:
        """The backups of ``alias`` (or every database) as a table, newest first."""
        from safemigrate import catalogue

        backups = catalogue.list_backups(alias=alias)
        if not backups:
            self.stdout.write("No backups yet. Make one with: python manage.py backup")
            return
        ids = catalogue.catalogue_ids()
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


def describe_backup(manifest: Manifest, backup_id: int | None = None) -> list[str]:
    """Lines describing one backup, for text output."""
    lines = [
        f"Backup:   {manifest.name}" + (f" (id {backup_id})" if backup_id else ""),
        f"Path:     {manifest.file_path}",
        f"Size:     {human_size(manifest.size)} ({manifest.size:,} bytes; "
        f"{human_size(manifest.raw_size)} uncompressed)",
        f"SHA-256:  {manifest.sha256}",
        f"Created:  {manifest.created}  reason: {manifest.reason}  duration: {manifest.duration:.2f}s",
        f"Verified: {'yes' if manifest.verified else 'no'}"
        + (f" ({manifest.verified_at})" if manifest.verified_at else ""),
        f"Rows:     {manifest.total_rows:,} in {len(manifest.row_counts)} tables",
    ]
    return lines
