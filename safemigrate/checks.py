"""System checks (IDs listed in the README); anything that must not block a migration is a Warning."""

from __future__ import annotations

import logging
import os
from contextvars import ContextVar
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.management import find_commands, get_commands

from safemigrate.conf import COMPRESSIONS, INTEGRITY_LEVELS, backup_dir_for, get_settings

MIN_PASSPHRASE_LENGTH = 16
"""SAFEMIGRATE_ENCRYPTION_KEY shorter than this gets warning W003."""

logger = logging.getLogger("safemigrate")

health_checks_wanted: ContextVar[bool] = ContextVar("safemigrate_health_checks_wanted", default=True)
"""False while ``migrate`` runs: W001/W002/W017 are for ``check --database``, the admin and /healthz,
not for the no-op migrate of every container start (their queries cost more than the rest)."""


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
    # Only with safemigrate in the running registry (a project's tests may swap INSTALLED_APPS).
    if apps.is_installed("safemigrate") and get_commands().get("migrate") != "safemigrate":
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
    try:
        if conf.retention not in (None, "", {}):  # rotation's parser, imported only when it has work
            from safemigrate.rotation import rotation_policy

            rotation_policy()
    except ValueError as exc:
        messages.append(
            checks.Error(
                str(exc),
                hint="e.g. keep_all_days=7,daily_days=16,weekly_weeks=8,monthly_months=4,yearly_years=2 "
                "(see the README's settings).",
                id="safemigrate.E008",
            )
        )
    messages.extend(_check_vendor_adapters())
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
                id="safemigrate.W005",
            )
        )
    messages.extend(_check_schedules(conf.schedule, conf.verify_schedule))
    return messages


def _check_vendor_adapters() -> list[checks.CheckMessage]:
    """E009: each class SAFEMIGRATE_VENDOR_ADAPTERS names exists and is a VendorAdapter."""
    from safemigrate import vendors  # here: it imports the adapters the setting names
    from safemigrate.exceptions import UnsupportedOperation

    problems: list[str] = []
    try:
        for engine, path in vendors.configured_adapters().items():
            try:
                vendors.load_adapter_class(path, engine=engine)
            except UnsupportedOperation as exc:
                problems.append(str(exc))
    except UnsupportedOperation as exc:
        problems.append(str(exc))
    hint = (
        "e.g. SAFEMIGRATE_VENDOR_ADAPTERS = {'django.contrib.gis.db.backends.postgis': "
        "'safemigrate.vendors.postgresql.Adapter'} (see docs/postgresql-mariadb.md)."
    )
    return [checks.Error(problem, hint=hint, id="safemigrate.E009") for problem in problems]


def _check_schedules(schedule: str | None, verify_schedule: str | None) -> list[checks.CheckMessage]:
    """E006 (a bad cron expression) and W004 (a schedule, but no django-q2 to run it)."""
    wanted = [
        (name, expression)
        for name, expression in (
            ("SAFEMIGRATE_SCHEDULE", schedule),
            ("SAFEMIGRATE_VERIFY_SCHEDULE", verify_schedule),
        )
        if expression is not None
    ]
    if not wanted:
        return []
    if not apps.is_installed("django_q"):
        names = " and ".join(name for name, _ in wanted)
        return [
            checks.Warning(
                f"{names} is set, but django-q2 is not in INSTALLED_APPS: nothing runs the schedule",
                hint="pip install 'safemigrate[tasks]', add 'django_q' to INSTALLED_APPS and run "
                "manage.py qcluster; or unset it and run manage.py backup from cron.",
                id="safemigrate.W004",
            )
        ]
    from croniter import croniter

    return [
        checks.Error(
            f"{name}={expression!r} is not a valid cron expression",
            hint="Use five fields (minute hour day month weekday), e.g. '0 3 * * *' "
            "for every day at 03:00, or unset it.",
            id="safemigrate.E006",
        )
        for name, expression in wanted
        if not croniter.is_valid(expression)
    ]


def _distribution(module: str) -> str:
    """``app (the dist-name package)`` when an installed distribution provides ``module``."""
    dists = packages_distributions().get(module.partition(".")[0], [])
    return f"{module} (the {dists[0]} package)" if dists else module


@checks.register()
def check_command_name(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W003: another installed app (e.g. the unrelated django-safemigrate) also has a ``safemigrate``.

    Django gives a command name to the first app in INSTALLED_APPS that has it, silently.
    """
    owners = [
        config.name
        for config in apps.get_app_configs()
        if "safemigrate" in find_commands(str(Path(config.path) / "management"))
    ]
    others = [name for name in owners if name != "safemigrate"]
    if not others:
        return []
    winner = get_commands().get("safemigrate")
    if winner == "safemigrate":
        losers = ", ".join(_distribution(name) for name in others)
        msg = (
            f"`manage.py safemigrate` runs safemigrate's command; the `safemigrate` command of "
            f"{losers} cannot be run"
        )
        hint = (
            "You lose that app's own `safemigrate` (django-safemigrate's runs only the migrations "
            "marked Safe.before_deploy; this one applies every pending migration, with a backup and "
            "rollback). Remove the other app from INSTALLED_APPS, or put it above 'safemigrate' and "
            "migrate safely with `manage.py migrate`."
        )
    else:
        msg = (
            f"`manage.py safemigrate` runs the command of {_distribution(str(winner))}, not "
            "safemigrate's: it migrates without safemigrate's checks, backup and rollback"
        )
        hint = (
            "`manage.py migrate` is still safemigrate's and guarded: use it. Or put 'safemigrate' "
            "above that app in INSTALLED_APPS (you then lose its `safemigrate`)."
        )
    return [checks.Warning(msg, hint=hint, id="safemigrate.W003")]


@checks.register(checks.Tags.database)
def check_health(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W001 (no recent verified backup) and W002 (last migration run rolled back or failed).

    Database checks, like Django's own: they run with ``migrate`` and ``check --database``, never
    block anything (Warnings), and never raise, whatever state the database is in.
    """
    if not health_checks_wanted.get():
        return []
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


@checks.register(checks.Tags.database)
def check_unapplied(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W017: the database lacks migrations of this code (after restoring an older backup, say).

    A database check like W001 (``check --database``); ``migrate`` leaves it out, being the fix.
    """
    if not health_checks_wanted.get():
        return []
    from safemigrate.restore import unapplied_migrations

    messages: list[checks.CheckMessage] = []
    for alias in databases or ():
        unapplied = unapplied_migrations(alias=alias)
        if unapplied:
            more = f" and {len(unapplied) - 1} more" if len(unapplied) > 1 else ""
            messages.append(
                checks.Warning(
                    f"database {alias!r} lacks {len(unapplied)} migration(s) of this code "
                    f"({unapplied[0]}{more}): pages that use those tables fail until it is migrated",
                    hint="Run `manage.py migrate` (it takes a verified backup first).",
                    id="safemigrate.W017",
                )
            )
    return messages


@checks.register()
def check_notify_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """W014 mail to nobody, W015 a bad SAFEMIGRATE_NOTIFY_LEVEL, W016 a webhook that is not http(s).

    Warnings, never Errors: a notification setting must never block a migration.
    """
    from urllib.parse import urlsplit

    from safemigrate.conf import NOTIFY_LEVELS

    conf = get_settings()
    messages: list[checks.CheckMessage] = []
    if conf.notify_level not in NOTIFY_LEVELS:
        messages.append(
            checks.Warning(
                f"SAFEMIGRATE_NOTIFY_LEVEL={conf.notify_level!r} is not one of {', '.join(NOTIFY_LEVELS)}",
                hint="Use failures (default), all or off.",
                id="safemigrate.W015",
            )
        )
    for setting, urls in (
        ("SAFEMIGRATE_NOTIFY_SLACK", conf.notify_slack),
        ("SAFEMIGRATE_NOTIFY_DISCORD", conf.notify_discord),
        ("SAFEMIGRATE_NOTIFY_WEBHOOKS", conf.notify_webhooks),
    ):
        for number, url in enumerate(urls, start=1):
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                messages.append(
                    checks.Warning(
                        f"{setting} entry {number} is not an http(s) URL",
                        hint="Use the webhook URL your service gives you (https://…).",
                        id="safemigrate.W016",
                    )
                )
    if conf.notify_mail_admins and not settings.ADMINS:
        messages.append(
            checks.Warning(
                "SAFEMIGRATE_NOTIFY_MAIL_ADMINS is on but ADMINS is empty: no mail would be sent",
                hint="Set ADMINS (and the EMAIL_* settings), or turn SAFEMIGRATE_NOTIFY_MAIL_ADMINS off.",
                id="safemigrate.W014",
            )
        )
    return messages
