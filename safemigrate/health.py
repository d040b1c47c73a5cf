"""The health signal: is there a recent verified backup, and did the last migration run go well?

Computed from the backup folder (the source of truth) and the MigrationRun log; shown by the
system checks ``safemigrate.W001``/``W002`` and as a banner on the admin's backup list. Reading it
never changes anything and never raises for a missing table or folder.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.apps import apps
from django.db import DatabaseError, connections, router
from django.utils import timezone

from safemigrate import catalogue
from safemigrate.apps import is_project_app
from safemigrate.conf import backup_dir_for, get_settings
from safemigrate.manifest import Manifest

logger = logging.getLogger("safemigrate")


@dataclass(frozen=True)
class LastRun:
    """The most recent recorded migration run (runs with nothing to apply are not recorded)."""

    status: str
    status_display: str
    started: datetime
    error: str
    backup_name: str
    rollback: str = ""
    """transaction | restore | "" (recorded before rollback kinds existed)."""


UNSAFE = frozenset({"safemigrate.W001", "safemigrate.W002", "safemigrate.W011"})
"""Problems that mean the backups are not safe (the endpoint's 503): no verified backup within
the max age, a migration rolled back (or its rollback failed) since, free space under the floor.
The others (size over the cap, a failed verification of an older backup, notifications or an
off-site copy failing) are warnings: reported, with 200."""


@dataclass(frozen=True)
class Problem:
    """One thing the health signal warns about, with the check ID that reports it."""

    id: str
    message: str
    hint: str

    @property
    def unsafe(self) -> bool:
        return self.id in UNSAFE


@dataclass(frozen=True)
class BackupHealth:
    alias: str
    max_age_hours: float
    newest_verified: Manifest | None
    age_hours: float | None
    has_data: bool
    last_run: LastRun | None
    problems: list[Problem] = field(default_factory=list)
    total_size: int = 0
    """Bytes taken by this database's backups in the folder (as stored)."""
    free_bytes: int | None = None
    """Free space on the backup folder's disk (None when it cannot be read)."""
    last_offsite: str | None = None
    """When a backup was last copied off-site (ISO 8601), if ever."""

    @property
    def ok(self) -> bool:
        """No problem that makes the backups unsafe (warnings may remain)."""
        return not any(p.unsafe for p in self.problems)


def database_has_data(*, alias: str = "default") -> bool:
    """True when a table of one of the project's own apps holds a row.

    Django's contrib apps (users, permissions, sessions, …), django-q2 and safemigrate do not
    count: a freshly migrated project with a superuser is still "empty".
    """
    connection = connections[alias]
    try:
        with connection.cursor() as cursor:
            tables = set(connection.introspection.table_names(cursor))
    except DatabaseError:
        return False
    for model in apps.get_models():
        meta = model._meta
        if (
            not is_project_app(meta.app_label)
            or not meta.managed
            or meta.proxy
            or meta.db_table not in tables
            or not router.allow_migrate_model(alias, model)
        ):
            continue
        try:
            if model._base_manager.using(alias).exists():
                return True
        except DatabaseError:
            continue
    return False


def last_migration_run(*, alias: str = "default") -> LastRun | None:
    """The newest finished MigrationRun of ``alias``, or None (also when the table is missing)."""
    from safemigrate.models import MigrationRun

    try:
        run = (
            MigrationRun.objects.using(router.db_for_read(MigrationRun))
            .filter(database=alias)
            .order_by("-started", "-id")
            .first()
        )
    except DatabaseError:
        return None
    if run is None:
        return None
    return LastRun(
        status=run.status,
        status_display=str(run.get_status_display()),
        # Naive (local time) when USE_TZ is False; the messages say UTC, so make it so.
        started=(
            timezone.make_aware(run.started) if timezone.is_naive(run.started) else run.started
        ).astimezone(UTC),
        error=run.error,
        backup_name=run.backup_name,
        rollback=run.rollback,
    )


def _hours(hours: float) -> str:
    if hours < 1:
        return f"{round(hours * 60)} minutes"
    if hours < 48:
        return f"{hours:.0f} hours"
    return f"{hours / 24:.0f} days"


def backup_health(
    *, alias: str = "default", now: datetime | None = None, backups: list[Manifest] | None = None
) -> BackupHealth:
    """The health of database ``alias``: W001 (no recent verified backup), W002 (last run failed).

    SAFEMIGRATE_MAX_BACKUP_AGE_HOURS=0 turns the age warning off. ``backups`` (newest first)
    saves reading every manifest in the folder, e.g. the catalogue's rows on an admin page.
    """
    max_age = get_settings().max_backup_age_hours
    now = now or datetime.now(UTC)
    if backups is None:
        backups = [m for m in catalogue.list_backups(alias=alias) if m.database == alias]
    newest = next((m for m in backups if m.verified), None)
    age = (now - newest.created_at).total_seconds() / 3600 if newest else None
    has_data = newest is not None or database_has_data(alias=alias)
    last_run = last_migration_run(alias=alias)
    problems = [
        p
        for p in (
            _age_problem(alias, newest, age, max_age=max_age, has_data=has_data),
            _run_problem(alias, last_run),
        )
        if p is not None
    ]
    total_size = sum(m.size for m in backups)
    free = free_space(backup_dir_for(alias))
    problems += _monitors(alias, backups, total_size=total_size, free=free)
    copied = [str(m.offsite["copied_at"]) for m in backups if m.offsite and m.offsite.get("copied_at")]
    return BackupHealth(
        total_size=total_size,
        free_bytes=free,
        last_offsite=max(copied, default=None),
        alias=alias,
        max_age_hours=max_age,
        newest_verified=newest,
        age_hours=age,
        has_data=has_data,
        last_run=last_run,
        problems=problems,
    )


_BACK_UP_HINT = (
    'Make one with `manage.py backup` or the admin\'s "Back up now", or '
    "schedule backups with SAFEMIGRATE_SCHEDULE."
)


def _age_problem(
    alias: str, newest: Manifest | None, age: float | None, *, max_age: float, has_data: bool
) -> Problem | None:
    """W001: the newest verified backup is older than the max age, or data has no verified backup."""
    if max_age > 0 and newest is not None and age is not None and age > max_age:
        return Problem(
            id="safemigrate.W001",
            message=(
                f"the newest verified backup of database {alias!r} is {_hours(age)} old "
                f"({newest.name}); SAFEMIGRATE_MAX_BACKUP_AGE_HOURS is {max_age:g}"
            ),
            hint=_BACK_UP_HINT,
        )
    if max_age > 0 and newest is None and has_data:
        return Problem(
            id="safemigrate.W001",
            message=f"database {alias!r} holds data but has no verified backup in {backup_dir_for(alias)}",
            hint=_BACK_UP_HINT,
        )
    return None


def _run_problem(alias: str, last_run: LastRun | None) -> Problem | None:
    """W002: the last migration run was rolled back, or failed and its restore failed too."""
    from safemigrate.models import MigrationRun

    if last_run is None:
        return None
    run = f"the last migration run on database {alias!r} ({last_run.started:%Y-%m-%d %H:%M} UTC)"
    if last_run.status == MigrationRun.Status.ROLLED_BACK:
        return Problem(
            id="safemigrate.W002",
            message=f"{run} was rolled back: {last_run.error}",
            hint=_rollback_hint(last_run),
        )
    if last_run.status == MigrationRun.Status.FAILED:
        return Problem(
            id="safemigrate.W002",
            message=f"{run} failed and its automatic restore failed too: {last_run.error}",
            hint=(
                f"Restore by hand: manage.py restore {last_run.backup_name or '--latest'} "
                "--no-safety-backup (see the recovery guide)."
            ),
        )
    return None


def _rollback_hint(last_run: LastRun) -> str:
    """What to do after a rollback: it depends on how it was undone and what was kept."""
    if last_run.rollback == "transaction":
        return (
            "It was rolled back by the database transaction (nothing was written); fix "
            "the migration and run migrate again."
        )
    restored = f"The database was restored from {last_run.backup_name or 'its backup'}"
    if "changed rows in" in last_run.error:
        return (
            f"{restored}; "
            "the failed database was kept and the rows that differ dumped (both named "
            "above): fix the migration, run migrate again, review the dump and load it "
            "with manage.py loaddata, then drop the kept database."
        )
    if "kept as" in last_run.error:
        return (
            f"{restored}; "
            "the failed database was kept (named above): copy any rows written meanwhile "
            "from it, drop it, fix the migration and run migrate again."
        )
    return f"{restored} and is as it was before; fix the migration and run migrate again."


def free_space(directory: Path) -> int | None:
    """Free bytes on the disk of ``directory`` (or its nearest existing parent)."""
    for each in (directory, *directory.parents):
        if each.exists():
            try:
                return shutil.disk_usage(each).free
            except OSError:
                return None
    return None


def _monitors(alias: str, backups: list[Manifest], *, total_size: int, free: int | None) -> list[Problem]:
    """W010 total size over the cap, W011 free space under the floor, W012 failed verification,
    W013 notifications failing, W018 off-site copies failing."""
    found = [_size_problem(alias, total_size), _space_problem(alias, free)]
    found += _verification_problems(alias, backups)
    found += _notification_problems(alias)
    found.append(_offsite_problem(alias, backups))
    return [p for p in found if p is not None]


_MIB = 1024 * 1024


def _size_problem(alias: str, total_size: int) -> Problem | None:
    """W010: the backups take more than SAFEMIGRATE_MAX_TOTAL_SIZE_MB."""
    cap = get_settings().max_total_size_mb
    if cap <= 0 or total_size <= cap * _MIB:
        return None
    return Problem(
        id="safemigrate.W010",
        message=(
            f"the backups of database {alias!r} take {total_size / _MIB:,.0f} MiB; "
            f"SAFEMIGRATE_MAX_TOTAL_SIZE_MB is {cap:g}"
        ),
        hint="Keep fewer (SAFEMIGRATE_KEEP, then manage.py cleanupbackups) or raise the cap.",
    )


def _space_problem(alias: str, free: int | None) -> Problem | None:
    """W011: less free space than SAFEMIGRATE_MIN_FREE_SPACE_MB beside the backups."""
    floor = get_settings().min_free_space_mb
    if floor <= 0 or free is None or free >= floor * _MIB:
        return None
    return Problem(
        id="safemigrate.W011",
        message=(
            f"only {free / _MIB:,.0f} MiB free for the backups of database {alias!r} in "
            f"{backup_dir_for(alias)}; SAFEMIGRATE_MIN_FREE_SPACE_MB is {floor:g}"
        ),
        hint="Free space (manage.py cleanupbackups) or move SAFEMIGRATE_BACKUP_DIR to a larger disk: "
        "a migration needs room for its backup.",
    )


def _verification_problems(alias: str, backups: list[Manifest]) -> list[Problem | None]:
    """W012: a backup still there failed its last verification."""
    from safemigrate.status import read_status

    by_name = {m.name: m for m in backups}
    failed = read_status(alias).get("verification_failed") or {}
    problems: list[Problem | None] = []
    for name, failure in sorted(failed.items()):
        manifest = by_name.get(name)
        if manifest is None or (manifest.verified_at or "") > str(failure.get("at", "")):
            continue  # deleted, or verified again since
        problems.append(
            Problem(
                id="safemigrate.W012",
                message=f"backup {name} failed verification ({failure.get('at')}): {failure.get('error')}",
                hint="Do not restore it; take a new backup (manage.py backup) and delete this one.",
            )
        )
    return problems


def _notification_problems(alias: str) -> list[Problem | None]:
    """W013: a notification channel is failing."""
    from safemigrate.notify import failing_channels

    return [
        Problem(
            id="safemigrate.W013",
            message=(
                f"notifications via {failure['channel']} are failing ({failure.get('at')}, "
                f"{failure.get('event')}): {failure.get('error')}"
            ),
            hint="Check SAFEMIGRATE_NOTIFY_* and the receiver, then run manage.py notifytest.",
        )
        for failure in failing_channels(alias)
    ]


def _offsite_problem(alias: str, backups: list[Manifest]) -> Problem | None:
    """W018: backups still there could not be copied off-site (the newest failure named)."""
    from safemigrate.offsite import offsite_copy_of, offsite_failures

    by_name = {m.name: m for m in backups}
    not_copied = sorted(
        (
            (str(f.get("at", "")), name, str(f.get("error", "")))
            for name, f in offsite_failures(alias).items()
            if name in by_name and not offsite_copy_of(by_name[name])
        ),
        reverse=True,
    )
    if not not_copied:
        return None
    at, name, error = not_copied[0]
    return Problem(
        id="safemigrate.W018",
        message=(
            f"{len(not_copied)} backup(s) of database {alias!r} could not be copied off-site; "
            f"the last, {name} ({at}): {error}"
        ),
        hint="Check SAFEMIGRATE_STORAGE and the storage, then copy again: manage.py backup --offsite "
        "(a new backup), or wait for the next one.",
    )


def health_report(*, aliases: list[str] | None = None) -> dict[str, Any]:
    """What uptime monitors read (the health endpoint, ``backuphealth --format json``).

    No secrets and no row counts: backup names, ages, statuses, counts of unapplied migrations,
    byte counts and the IDs of the problems found. ``healthy`` is False when the backups are not
    safe (``problems``: see UNSAFE), on unapplied migrations (the site would fail), or when the
    migrations cannot be read; softer problems are ``warnings`` and leave it True.
    """
    from safemigrate.plan import pending_plan

    databases = []
    for alias in aliases or list(connections):
        health = backup_health(alias=alias)
        try:
            unapplied: int | None = len(pending_plan(alias=alias).steps)
        except Exception:  # noqa: BLE001 - an unreachable database is the finding, not an error
            unapplied = None
        newest = health.newest_verified
        run = health.last_run
        databases.append(
            {
                "database": alias,
                "healthy": health.ok and unapplied == 0,
                "newest_verified_backup": newest
                and {
                    "name": newest.name,
                    "created": newest.created,
                    "age_hours": round(health.age_hours or 0.0, 2),
                },
                "last_migration_run": run and {"status": run.status, "started": run.started.isoformat()},
                "unapplied_migrations": unapplied,
                "backups_total_bytes": health.total_size,
                "backup_folder_free_bytes": health.free_bytes,
                "last_offsite_copy": health.last_offsite,
                "problems": [p.id for p in health.problems if p.unsafe]
                + (["safemigrate.W017"] if unapplied else []),
                "warnings": [p.id for p in health.problems if not p.unsafe],
            }
        )
    return {"healthy": all(d["healthy"] for d in databases), "databases": databases}
