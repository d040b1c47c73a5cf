"""``notifytest``: send a test event to every configured channel now, and say how each went."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from safemigrate.management.base import SafeMigrateCommand
from safemigrate.notify import channels, notice_for, send_notice


class Command(SafeMigrateCommand):
    help = (
        "Sends a test notification to every channel in SAFEMIGRATE_NOTIFY_* (mail_admins, "
        "Slack, Discord, JSON webhooks), right here rather than through the task queue."
    )

    def add_arguments(self, parser: Any) -> None:
        self.add_database_argument(parser)

    def handle(self, *args: Any, database: str, **options: Any) -> None:
        names = channels()
        if not names:
            raise CommandError(
                "no notification channel is configured; set SAFEMIGRATE_NOTIFY_MAIL_ADMINS, "
                "SAFEMIGRATE_NOTIFY_SLACK, SAFEMIGRATE_NOTIFY_DISCORD or SAFEMIGRATE_NOTIFY_WEBHOOKS"
            )
        notice = notice_for("test", alias=database)
        failed = []
        for channel in names:
            outcome = send_notice(channel, notice)
            if outcome["ok"]:
                self.stdout.write(f"{channel}: sent")
            else:
                failed.append(f"{channel} ({outcome['error']})")
        if failed:
            raise CommandError(
                f"notification failed on {len(failed)} of {len(names)} channel(s): {'; '.join(failed)}"
            )
        self.stdout.write(self.style.SUCCESS(f"Test notification sent to {len(names)} channel(s)."))
