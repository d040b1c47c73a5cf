"""safemigrate settings: one frozen dataclass built from SAFEMIGRATE_* Django settings.

Read lazily (never at import) and cached; the cache is cleared when a SAFEMIGRATE_* setting
changes, so ``override_settings`` and pytest's ``settings`` fixture just work.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import mail
from django.core.signals import setting_changed
from django.db import connections
from django.db.backends.base.creation import TEST_DATABASE_PREFIX
from django.dispatch import receiver

COMPRESSIONS = ("zstd", "gzip", "none")
INTEGRITY_LEVELS = ("quick", "full")
NOTIFY_LEVELS = ("failures", "all", "off")


@dataclass(frozen=True)
class SafeMigrateSettings:
    backup_dir: Path | None = None
    """Folder for backups; None means a ``backups/`` folder beside the SQLite file."""
    keep: int = 10
    """Backups kept per database by rotation (pinned ones and the newest verified are never removed)."""
    compress: str = "zstd"
    """zstd (fast, default), gzip (portable) or none."""
    encryption_key: str | None = None
    """A passphrase; when set, backups are encrypted with AES-256-GCM."""
    schedule: str | None = None
    """Cron expression for scheduled backups (django-q2)."""
    verify_schedule: str | None = None
    """Cron expression for periodic verification (django-q2)."""
    storage: str | None = None
    """Optional storage alias (e.g. S3) where backups are copied off-site."""
    integrity_check: str = "quick"
    """quick (PRAGMA quick_check) or full (PRAGMA integrity_check) before and after migrating."""
    lock_timeout: float = 300.0
    """Seconds a second run waits for the migration lock before giving up."""
    json_after_migrate: bool = False
    """Queue a portable JSON dump after each successful migration."""
    max_total_size_mb: float = 0.0
    """Warn when the backups of a database take more than this many MiB in total (0: off)."""
    min_free_space_mb: float = 0.0
    """Warn when the backup folder's disk has less than this many MiB free (0: off)."""
    notify_level: str = "failures"
    """Which events are sent: failures (default), all, or off."""
    notify_mail_admins: bool = False
    """Mail each sent event to settings.ADMINS (Django's mail_admins)."""
    notify_slack: tuple[str, ...] = ()
    """Slack incoming-webhook URLs."""
    notify_discord: tuple[str, ...] = ()
    """Discord webhook URLs."""
    notify_webhooks: tuple[str, ...] = ()
    """URLs that receive the event as a plain JSON object (POST)."""
    notify_attempts: int = 3
    """Tries per channel before the failure is logged and shown in the admin."""
    notify_retry_delay: float = 2.0
    """Seconds before the second try; doubled before each next one."""
    notify_timeout: float = 10.0
    """Seconds one webhook request may take."""
    max_backup_age_hours: float = 48.0
    """Warn (system check, admin banner) when the newest verified backup is older than this."""
    fence_retry_after: int = 30
    """Retry-After (seconds) of the fence middleware's 503 while the migration lock is held."""
    guard_test_databases: bool = False
    """Guard ``migrate`` on test databases too (safemigrate's own tests); by default they get Django's."""
    admin_backup_interval: float = 300.0
    """Seconds between two "Back up now" clicks in the admin (per database): a staff user cannot
    fill the disk with them."""
    free_space_reserve: int = 512 * 2**20
    """Bytes that must stay free in the backup folder after a "Back up now" backup."""
    retention: str | dict[str, Any] | None = None
    """Grandfather-father-son retention (a dict, or ``key=value,…``); None: keep the newest ``keep``.
    Parsed by safemigrate.rotation.retention_policy (E008 when it is wrong)."""
    pin_pre_migrate_days: float = 7.0
    """Days a pre-migration backup is pinned automatically (0: off)."""


def _setting(name: str, default: Any) -> Any:
    value = getattr(settings, f"SAFEMIGRATE_{name}", default)
    return default if value is None else value


def _urls(name: str) -> tuple[str, ...]:
    """A URL list setting: a list, or one string (commas separate several)."""
    value = _setting(name, ())
    items = value.split(",") if isinstance(value, str) else value
    return tuple(str(url).strip() for url in items if str(url).strip())


@functools.lru_cache(maxsize=1)
def get_settings() -> SafeMigrateSettings:
    """The current safemigrate settings (validated by system checks, not here)."""
    backup_dir = getattr(settings, "SAFEMIGRATE_BACKUP_DIR", None)
    return SafeMigrateSettings(
        backup_dir=Path(backup_dir) if backup_dir else None,
        keep=int(_setting("KEEP", 10)),
        compress=str(_setting("COMPRESS", "zstd")).lower(),
        encryption_key=getattr(settings, "SAFEMIGRATE_ENCRYPTION_KEY", None) or None,
        schedule=getattr(settings, "SAFEMIGRATE_SCHEDULE", None) or None,
        verify_schedule=getattr(settings, "SAFEMIGRATE_VERIFY_SCHEDULE", None) or None,
        storage=getattr(settings, "SAFEMIGRATE_STORAGE", None) or None,
        integrity_check=str(_setting("INTEGRITY_CHECK", "quick")).lower(),
        lock_timeout=float(_setting("LOCK_TIMEOUT", 300.0)),
        json_after_migrate=bool(_setting("JSON_AFTER_MIGRATE", False)),
        max_total_size_mb=float(_setting("MAX_TOTAL_SIZE_MB", 0.0)),
        min_free_space_mb=float(_setting("MIN_FREE_SPACE_MB", 0.0)),
        notify_level=str(_setting("NOTIFY_LEVEL", "failures")).lower(),
        notify_mail_admins=bool(_setting("NOTIFY_MAIL_ADMINS", False)),
        notify_slack=_urls("NOTIFY_SLACK"),
        notify_discord=_urls("NOTIFY_DISCORD"),
        notify_webhooks=_urls("NOTIFY_WEBHOOKS"),
        notify_attempts=int(_setting("NOTIFY_ATTEMPTS", 3)),
        notify_retry_delay=float(_setting("NOTIFY_RETRY_DELAY", 2.0)),
        notify_timeout=float(_setting("NOTIFY_TIMEOUT", 10.0)),
        max_backup_age_hours=float(_setting("MAX_BACKUP_AGE_HOURS", 48.0)),
        fence_retry_after=int(_setting("FENCE_RETRY_AFTER", 30)),
        guard_test_databases=bool(_setting("GUARD_TEST_DATABASES", False)),
        admin_backup_interval=float(_setting("ADMIN_BACKUP_INTERVAL", 300.0)),
        free_space_reserve=int(_setting("FREE_SPACE_RESERVE", 512 * 2**20)),
        retention=getattr(settings, "SAFEMIGRATE_RETENTION", None) or None,
        pin_pre_migrate_days=float(_setting("PIN_PRE_MIGRATE_DAYS", 7.0)),
    )


@receiver(setting_changed)
def _clear_cache(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("SAFEMIGRATE_"):
        get_settings.cache_clear()


def backup_dir_for(alias: str) -> Path:
    """Where backups of database ``alias`` live: SAFEMIGRATE_BACKUP_DIR, else the adapter's default
    (SQLite: ``backups/`` beside the file), else ``BASE_DIR/backups``."""
    configured = get_settings().backup_dir
    if configured is not None:
        return configured
    from safemigrate.exceptions import UnsupportedOperation
    from safemigrate.vendors import get_adapter  # here, not at import: settings may import conf

    try:
        default = get_adapter(alias).default_backup_dir()
    except UnsupportedOperation:  # no adapter: the check E009 or the first backup says so
        default = None
    if default is not None:
        return default
    base_dir = getattr(settings, "BASE_DIR", None)
    return Path(base_dir) / "backups" if base_dir is not None else Path("backups")


def is_test_database(alias: str) -> bool:
    """True for a database that Django's test runner (or pytest-django) created and switched to.

    Its backups would land in the real SAFEMIGRATE_BACKUP_DIR under the real alias (``--keepdb``,
    ``--reuse-db``), so ``migrate`` leaves it to Django. Only while the test environment is set up.
    """
    if not hasattr(mail, "outbox"):  # setup_test_environment() installs it
        return False
    connection = connections[alias]
    name = str(connection.settings_dict.get("NAME") or "")
    test_name = (connection.settings_dict.get("TEST") or {}).get("NAME")
    if name.startswith((TEST_DATABASE_PREFIX, "file:memorydb_")):  # the latter: in-memory SQLite
        return True
    return bool(test_name) and name == str(test_name)
