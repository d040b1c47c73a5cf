"""System checks (IDs listed in the README); anything that must not block a migration is a Warning."""

from __future__ import annotations

import logging
import os
from typing import Any

from croniter import croniter
from django.conf import settings
from django.core import checks
from django.core.management import get_commands

from safemigrate.conf import COMPRESSIONS, INTEGRITY_LEVELS, backup_dir_for, get_settings

MIN_PASSPHRASE_LENGTH = 16
"""SAFEMIGRATE_ENCRYPTION_KEY shorter than this gets warning W003."""

logger = logging.getLogger("safemigrate")


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    conf = get_settings()
    directory = backup_dir_for("default")
    probe = directory if directory.exists() else directory.parent
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        messages.append(
            checks.Error(
                f"the backup folder {directory} is not writable",
                hint="Make it writable by this user, or set SAFEMIGRATE_BACKUP_DIR.",
                id="safemigrate.E001",
            )
        )
    if get_commands().get("migrate") != "safemigrate":
        messages.append(
            checks.Error(
                "`migrate` is not safemigrate's: another app overrides it",
                hint="Put 'safemigrate' above that app in INSTALLED_APPS.",
                id="safemigrate.E002",
            )
        )
    if conf.compress not in COMPRESSIONS:
        messages.append(
            checks.Error(
                f"SAFEMIGRATE_COMPRESS={conf.compress!r} is not one of {', '.join(COMPRESSIONS)}",
                hint="Use zstd (default), gzip or none.",
                id="safemigrate.E003",
            )
        )
    if conf.integrity_check not in INTEGRITY_LEVELS:
        messages.append(
            checks.Error(
                f"SAFEMIGRATE_INTEGRITY_CHECK={conf.integrity_check!r} is not quick or full",
                hint="Use quick (default) or full.",
                id="safemigrate.E004",
            )
        )
    if conf.keep < 1:
        messages.append(
            checks.Error(
                f"SAFEMIGRATE_KEEP={conf.keep} must be at least 1",
                hint="Set SAFEMIGRATE_KEEP to how many backups to keep (default 10).",
                id="safemigrate.E005",
            )
        )
    if conf.storage is not None and conf.storage not in settings.STORAGES:
        messages.append(
            checks.Error(
                f"SAFEMIGRATE_STORAGE={conf.storage!r} is not a key of STORAGES",
                hint=f"Add STORAGES[{conf.storage!r}] (e.g. S3 through django-storages), "
                "or unset SAFEMIGRATE_STORAGE.",
                id="safemigrate.E007",
            )
        )
    if conf.encryption_key is not None and len(conf.encryption_key) < MIN_PASSPHRASE_LENGTH:
        messages.append(
            checks.Warning(
                f"SAFEMIGRATE_ENCRYPTION_KEY is shorter than {MIN_PASSPHRASE_LENGTH} characters: "
                "whoever gets a backup file can guess it",
                hint="Use a long random passphrase (e.g. python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'); backups made with the old one still need it.",
                id="safemigrate.W003",
            )
        )
    for name, expression in (
        ("SAFEMIGRATE_SCHEDULE", conf.schedule),
        ("SAFEMIGRATE_VERIFY_SCHEDULE", conf.verify_schedule),
    ):
        if expression is not None and not croniter.is_valid(expression):
            messages.append(
                checks.Error(
                    f"{name}={expression!r} is not a valid cron expression",
                    hint="Use five fields (minute hour day month weekday), e.g. '0 3 * * *' "
                    "for every day at 03:00, or unset it.",
                    id="safemigrate.E006",
                )
            )
    return messages


@checks.register(checks.Tags.database)
def check_health(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W001 (no recent verified backup) and W002 (last migration run rolled back or failed).

    Database checks, like Django's own: they run with ``migrate`` and ``check --database``, never
    block anything (Warnings), and never raise, whatever state the database is in.
    """
    from safemigrate.health import backup_health

    messages: list[checks.CheckMessage] = []
    for alias in databases or ():
        try:
            health = backup_health(alias=alias)
        except Exception:  # noqa: BLE001 - a health signal must never stop a migration
            logger.debug("health check skipped for %s", alias, exc_info=True)
            continue
        messages.extend(
            checks.Warning(problem.message, hint=problem.hint, id=problem.id) for problem in health.problems
        )
    return messages
