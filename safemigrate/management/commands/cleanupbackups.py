"""``cleanupbackups``: rotation, now (it also runs as a task after each migration)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from safemigrate.management.base import SafeMigrateCommand
from safemigrate.rotation import rotate_backups


class Command(SafeMigrateCommand):
    help = (
        "Deletes old backups by SAFEMIGRATE_RETENTION (or the newest --keep / SAFEMIGRATE_KEEP) per "
        "reason class, with their off-site copies; never pinned ones or the newest verified. Also "
        "removes leftovers of interrupted runs. --dry-run says what each rule keeps and why."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--keep", type=int, default=None, help="Keep the newest N per class (instead of the policy)."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Delete nothing; say what each rule keeps and why."
        )
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
                    "policy": result.policy,
                    "decisions": [d.as_json() for d in result.decisions],
                    "offsite_deleted": result.offsite_deleted,
                    "offsite_failed": result.offsite_failed,
                }
            )
            return
        for name in result.swept:
            self.stdout.write(f"Removed {name} (left behind by an interrupted run)")
        verb = "Would delete" if dry_run else "Deleted"
        offsite = set(result.offsite_deleted)
        if dry_run:
            self.stdout.write(f"Rules: {result.policy}")
            width = max((len(d.group) for d in result.decisions), default=0)
            for d in result.decisions:
                also = " (and its off-site copy)" if d.name in offsite else ""
                self.stdout.write(
                    f"{'keep' if d.keep else 'delete':6}  {d.group:{width}}  {d.name}  {d.why}{also}"
                )
        else:
            for d in result.decisions:
                if not d.keep:
                    also = " and its off-site copy" if d.name in offsite else ""
                    self.stdout.write(f"Deleted {d.name}{also} ({d.why})")
            for name in sorted(offsite - set(result.deleted)):
                self.stdout.write(f"Deleted the off-site copy of {name} (left by an earlier rotation)")
        for failure in result.offsite_failed:
            self.stderr.write(f"Off-site copy not deleted: {failure}")
        self.stdout.write(f"{verb} {len(result.deleted)} backup(s); {len(result.kept)} kept.")
