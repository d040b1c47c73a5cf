"""Notifications: events sent to Django's ``mail_admins`` and to webhooks (Slack, Discord, plain JSON).

A channel is named by kind and position ("mail", "slack:1", "discord:1", "webhook:1") and its URL
is looked up when it is sent, so queued tasks, logs and the status file never hold a webhook URL
(those URLs are secrets). Sending tries a few times and never raises: the outcome of each channel's
last attempt is written to the status file in the backup folder (safemigrate.status), logged, and a failure is
shown by the health signal (``safemigrate.W013``: system check, admin banner, health endpoint).
"""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import mail_admins

from safemigrate.conf import get_settings
from safemigrate.signals import FAILURES
from safemigrate.status import read_status, update_status

logger = logging.getLogger("safemigrate")

WEBHOOK_KINDS = {"slack": "notify_slack", "discord": "notify_discord", "webhook": "notify_webhooks"}


class NotifyError(Exception):
    """One attempt to send failed (the message never holds the URL)."""


@dataclass(frozen=True)
class Notice:
    """One event as people read it; ``as_json()`` is the plain-JSON webhook payload."""

    event: str
    failure: bool
    database: str
    title: str
    text: str
    at: str
    host: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _text(event: str, kwargs: dict[str, Any]) -> tuple[str, str]:
    alias = kwargs.get("alias", "default")
    backup = kwargs.get("backup")
    name = getattr(backup, "name", None) or kwargs.get("backup_name") or ""
    error = str(kwargs.get("error") or "").rstrip(".")
    plan = ", ".join(kwargs.get("plan") or [])
    if event == "backup_created":
        return (
            f"Backup of database {alias!r} made",
            f"{name} ({getattr(backup, 'size', 0):,} bytes, reason {kwargs.get('reason')}), verified.",
        )
    if event == "backup_failed":
        return f"Backup of database {alias!r} failed", error
    if event == "verification_failed":
        return f"Backup {name} failed verification", f"{error}. Do not restore it; take a new backup."
    if event == "migration_applied":
        return f"Migrated database {alias!r}", f"Applied {plan}; pre-migration backup {name}."
    if event == "migration_refused":
        return f"Migration of database {alias!r} refused", f"Nothing was changed: {error}"
    if event == "migration_rolled_back":
        return (
            f"Migration of database {alias!r} failed and was undone",
            f"{error}. The migration was undone; the pre-migration backup {name} is kept. "
            "Details: the admin's Migration runs.",
        )
    if event == "rollback_failed":
        return (
            f"URGENT: migration of database {alias!r} failed and its automatic undo failed",
            f"{error}. Restore by hand (see the recovery guide): "
            f"manage.py restore {name or '--latest'} --no-safety-backup",
        )
    if event == "offsite_copy_failed":
        return f"Off-site copy of {name} failed", error
    if event == "restore_done":
        safety = getattr(kwargs.get("safety_backup"), "name", None)
        after = f" The state before is in the safety backup {safety}." if safety else ""
        return f"Database {alias!r} restored from {name}", f"Restored.{after}"
    if event == "backups_stale":
        problems = kwargs.get("problems") or []
        return (
            f"Backups of database {alias!r} need attention",
            "\n".join(f"{p.id}: {p.message}. {p.hint}" for p in problems),
        )
    return "Test notification from safemigrate", f"notifytest on database {alias!r}: notifications work."


def notice_for(event: str, **kwargs: Any) -> Notice:
    """The notice for signal ``event`` sent with ``kwargs`` (``event="test"`` for notifytest)."""
    title, text = _text(event, kwargs)
    return Notice(
        event=event,
        failure=event in FAILURES,
        database=str(kwargs.get("alias", "default")),
        title=title,
        text=text,
        at=datetime.now(UTC).isoformat(timespec="seconds"),
        host=socket.gethostname(),
    )


def wanted(event: str) -> bool:
    """Does SAFEMIGRATE_NOTIFY_LEVEL send ``event``? (notifytest's "test" always goes.)"""
    level = get_settings().notify_level
    return event == "test" or level == "all" or (level == "failures" and event in FAILURES)


def channels() -> list[str]:
    """The configured channels, by name."""
    conf = get_settings()
    names = ["mail"] if conf.notify_mail_admins else []
    for kind, attr in WEBHOOK_KINDS.items():
        names += [f"{kind}:{n}" for n in range(1, len(getattr(conf, attr)) + 1)]
    return names


def _url(channel: str) -> str:
    kind, _, number = channel.partition(":")
    urls: tuple[str, ...] = getattr(get_settings(), WEBHOOK_KINDS.get(kind, ""), ())
    if not number.isdigit() or not 1 <= int(number) <= len(urls):
        raise NotifyError(f"channel {channel} is not configured (any more)")
    return urls[int(number) - 1]


def payload(channel: str, notice: Notice) -> dict[str, Any]:
    """What a webhook receives: Slack's and Discord's message shapes, else the notice itself."""
    kind = channel.partition(":")[0]
    if kind == "slack":
        return {"text": f"*{notice.title}*\n{notice.text}\n_{notice.host}, {notice.at}_"}
    if kind == "discord":
        return {"content": f"**{notice.title}**\n{notice.text}\n*{notice.host}, {notice.at}*"[:2000]}
    return notice.as_json()


def deliver(channel: str, notice: Notice) -> None:
    """One attempt on one channel; NotifyError says why it failed (without the URL)."""
    if channel == "mail":
        if not settings.ADMINS:
            raise NotifyError("SAFEMIGRATE_NOTIFY_MAIL_ADMINS is on but settings.ADMINS is empty")
        try:
            mail_admins(notice.title, f"{notice.text}\n\n{notice.host}, {notice.at}", fail_silently=False)
        except Exception as exc:  # noqa: BLE001 - SMTP and backend errors have no common base
            raise NotifyError(f"mail_admins failed: {exc}") from exc
        return
    url = _url(channel)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise NotifyError(f"{channel} is not an http(s) URL")
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url,
        data=json.dumps(payload(channel, notice)).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "safemigrate"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=get_settings().notify_timeout) as response:  # noqa: S310
            response.read()
    except urllib.error.HTTPError as exc:
        raise NotifyError(f"{parts.hostname} answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NotifyError(f"{parts.hostname} unreachable: {reason}") from exc


def send_notice(channel: str, notice: Notice) -> dict[str, Any]:
    """Deliver with retries (SAFEMIGRATE_NOTIFY_ATTEMPTS); never raises. The outcome is recorded."""
    conf = get_settings()
    attempts = max(conf.notify_attempts, 1)
    error = ""
    for attempt in range(1, attempts + 1):
        try:
            deliver(channel, notice)
        except NotifyError as exc:
            error = str(exc)
            logger.warning(
                "notification %s to %s, try %d/%d: %s", notice.event, channel, attempt, attempts, exc
            )
            if attempt < attempts:
                time.sleep(conf.notify_retry_delay * 2 ** (attempt - 1))
            continue
        outcome = {"channel": channel, "event": notice.event, "ok": True, "attempts": attempt, "error": ""}
        _record(notice.database, outcome)
        return outcome
    logger.error("notification %s to %s failed after %d tries: %s", notice.event, channel, attempts, error)
    outcome = {"channel": channel, "event": notice.event, "ok": False, "attempts": attempts, "error": error}
    _record(notice.database, outcome)
    return outcome


def _record(alias: str, outcome: dict[str, Any]) -> None:
    at = datetime.now(UTC).isoformat(timespec="seconds")
    update_status(
        alias, "notifications", lambda section: section.update({outcome["channel"]: {**outcome, "at": at}})
    )


def failing_channels(alias: str = "default") -> list[dict[str, Any]]:
    """Configured channels whose last attempt failed (a later success clears it)."""
    configured = set(channels())
    status = read_status(alias).get("notifications") or {}
    return [status[c] for c in sorted(status) if c in configured and not status[c].get("ok", True)]
