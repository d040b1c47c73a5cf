"""django-q2 schedules from settings: scheduled backups and periodic verification.

``sync_schedules()`` makes the Schedule rows match SAFEMIGRATE_SCHEDULE and
SAFEMIGRATE_VERIFY_SCHEDULE: created, updated or deleted by name, so running it any number of
times (after every ``migrate``, or with ``manage.py syncschedules``) never makes duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from croniter import croniter
from django.db import DatabaseError, connections, router, transaction
from django_q.models import Schedule

from safemigrate.conf import get_settings
from safemigrate.exceptions import SafeMigrateError

SCHEDULED_BACKUP = "safemigrate: scheduled backup"
VERIFY_BACKUPS = "safemigrate: verify backups"


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    func: str
    setting: str
    cron: str | None


def wanted_schedules() -> list[ScheduleSpec]:
    """safemigrate's schedules and their cron expression from settings (None: not wanted)."""
    conf = get_settings()
    return [
        ScheduleSpec(
            SCHEDULED_BACKUP,
            "safemigrate.tasks.scheduled_backup",
            "SAFEMIGRATE_SCHEDULE",
            conf.schedule,
        ),
        ScheduleSpec(
            VERIFY_BACKUPS,
            "safemigrate.tasks.verify_backups",
            "SAFEMIGRATE_VERIFY_SCHEDULE",
            conf.verify_schedule,
        ),
    ]


def schedule_database() -> str:
    """The database alias holding django-q2's Schedule table."""
    return router.db_for_write(Schedule)


def schedules_table_ready(*, using: str | None = None) -> bool:
    """True when django-q2's Schedule table exists (it doesn't before django_q is migrated)."""
    using = using or schedule_database()
    try:
        with connections[using].cursor() as cursor:
            tables = connections[using].introspection.table_names(cursor)
    except DatabaseError:
        return False
    return Schedule._meta.db_table in tables


def sync_schedules(*, alias: str = "default") -> dict[str, str]:
    """Create, update or delete safemigrate's schedules (for database ``alias``) from settings.

    Returns schedule name -> "created", "updated", "unchanged", "deleted" or "absent".
    Raises SafeMigrateError for an invalid cron expression (system check E006 reports it at
    start-up) or when django-q2's tables do not exist yet.
    """
    specs = wanted_schedules()
    for spec in specs:
        if spec.cron is not None and not croniter.is_valid(spec.cron):
            raise SafeMigrateError(
                f"{spec.setting}={spec.cron!r} is not a valid cron expression; use five fields "
                "(minute hour day month weekday), e.g. '0 3 * * *', or unset it"
            )
    using = schedule_database()
    if not schedules_table_ready(using=using):
        raise SafeMigrateError(
            f"django-q2's tables do not exist in database {using!r} yet; run manage.py migrate first"
        )
    with transaction.atomic(using=using):
        return {spec.name: _sync_one(spec, alias=alias, using=using) for spec in specs}


def _sync_one(spec: ScheduleSpec, *, alias: str, using: str) -> str:
    rows = Schedule.objects.using(using).filter(name=spec.name).order_by("pk")
    if spec.cron is None:
        deleted, _ = rows.delete()
        return "deleted" if deleted else "absent"
    current = rows.first()
    if current is not None:
        rows.exclude(pk=current.pk).delete()  # a hand-made duplicate: one schedule per name
    defaults: dict[str, Any] = {
        "func": spec.func,
        "args": repr((alias,)),
        "kwargs": None,
        "hook": None,
        "schedule_type": Schedule.CRON,
        "cron": spec.cron,
        "repeats": -1,
        "cluster": None,
    }
    if current is not None and all(getattr(current, k) == v for k, v in defaults.items()):
        return "unchanged"
    if current is None or current.cron != spec.cron or current.schedule_type != Schedule.CRON:
        # The first run is the next cron time from now (django-q2 otherwise runs it at once).
        first = Schedule(schedule_type=Schedule.CRON, cron=spec.cron)
        defaults["next_run"] = first.calculate_next_run()
    _, created = Schedule.objects.using(using).update_or_create(name=spec.name, defaults=defaults)
    return "created" if created else "updated"
