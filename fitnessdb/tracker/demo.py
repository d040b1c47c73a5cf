"""Demo data for ``seed_demo``: the catalogue, the recent weeks, and bulk workouts for load tests.

Nothing here prints: progress goes through an optional callback, like migrate's.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, models, transaction
from django.db.models import Max
from django.utils import timezone

from fitnessdb.tracker import demo_data
from fitnessdb.tracker.models import (
    BodyMetric,
    Exercise,
    Program,
    ProgramExercise,
    Workout,
    WorkoutSet,
)

#: Notes prefix of the hand-planned demo workouts and body metrics (recent weeks).
DEMO_TAG = "[demo]"
#: Notes prefix of generated bulk workouts (``seed_demo --workouts N``). Not a prefix of DEMO_TAG.
BULK_TAG = "[demo-bulk]"
#: The hand-planned demo covers this many weeks ending today.
DEMO_WEEKS = 6
#: Bulk workouts are spread over this many days before the demo weeks (several a day beyond it).
BULK_SPAN_DAYS = 3650

ProgressCallback = Callable[[int, int], None]


def local_today() -> dt.date:
    """Today in TIME_ZONE (``localdate()`` refuses the naive ``now()`` of USE_TZ = False)."""
    return timezone.localdate() if settings.USE_TZ else timezone.now().date()


def _rng(seed: int) -> random.Random:
    """A deterministic generator: the same seed gives the same demo data."""
    return random.Random(seed)  # noqa: S311 - demo data, not security


# --- the catalogue ------------------------------------------------------------------


@dataclass(frozen=True)
class Catalogue:
    """The demo exercises and programs as stored, keyed by their catalogue names."""

    exercises: dict[str, Exercise]
    programs: dict[str, Program]
    exercises_created: int
    programs_created: int


def ensure_catalogue(*, using: str = DEFAULT_DB_ALIAS) -> Catalogue:
    """Create the demo exercises and programs that are missing; never overwrites existing rows.

    Exercises match case-insensitively, so a user's own "back squat" is reused, not duplicated.
    """
    exercises: dict[str, Exercise] = {}
    exercises_created = 0
    with transaction.atomic(using=using):
        for item in demo_data.EXERCISES:
            exercise, created = Exercise.objects.using(using).get_or_create(
                name__iexact=item.name,
                defaults={
                    "name": item.name,
                    "muscle_group": item.muscle_group,
                    "equipment": item.equipment,
                    "notes": item.notes,
                },
            )
            exercises[item.name] = exercise
            exercises_created += created

        programs: dict[str, Program] = {}
        programs_created = 0
        for spec in demo_data.PROGRAMS:
            program, created = Program.objects.using(using).get_or_create(
                name=spec.name, defaults={"description": spec.description}
            )
            programs[spec.name] = program
            programs_created += created
            entries = [entry for _day, day_entries in spec.days for entry in day_entries]
            for order, (name, target_sets, target_reps) in enumerate(entries, start=1):
                ProgramExercise.objects.using(using).get_or_create(
                    program=program,
                    order=order,
                    defaults={
                        "exercise": exercises[name],
                        "target_sets": target_sets,
                        "target_reps": target_reps,
                    },
                )
    return Catalogue(exercises, programs, exercises_created, programs_created)


# --- the hand-planned recent weeks --------------------------------------------------

_EXERCISE_SPECS = {item.name: item for item in demo_data.EXERCISES}
_RPE_VALUES = tuple(Decimal(n) / 2 for n in range(12, 21))  # 6.0, 6.5, … 10.0
_decimals: dict[float, Decimal] = {}


def _kg(value: float) -> Decimal:
    """A weight as a two-place Decimal, cached (the bulk generator makes millions)."""
    decimal = _decimals.get(value)
    if decimal is None:
        decimal = _decimals[value] = Decimal(f"{value:.2f}")
    return decimal


def _round_to_step(weight: float, step: float) -> float:
    if step <= 0:
        return 0.0
    return max(0.0, round(weight / step) * step)


@dataclass(frozen=True)
class _PlannedSet:
    exercise: str
    reps: int
    weight: Decimal
    rpe: Decimal | None


@dataclass
class _PlannedWorkout:
    date: dt.date
    program: str | None
    day: str
    entries: tuple[tuple[str, int, int], ...]
    notes: str = ""
    sets: list[_PlannedSet] = field(default_factory=list)


_SESSION_REMARKS = (
    "",
    "",
    "",
    "Felt strong today.",
    "Short on sleep, kept it honest.",
    "Gym was packed, supersetted accessories.",
    "New belt, much better bracing.",
    "Left shoulder a bit tight, extra warm-up.",
)


def _plan_demo_workouts(*, start: dt.date, days: int, rng: random.Random) -> list[_PlannedWorkout]:
    """Three weeks of 5x5, then Push/Pull/Legs, plus two ad-hoc sessions; linear progression."""
    five_by_five, push_pull_legs = demo_data.PROGRAMS[0], demo_data.PROGRAMS[1]
    plan: list[_PlannedWorkout] = []
    session = Counter[str]()
    for offset in range(days):
        date = start + dt.timedelta(days=offset)
        week, weekday = offset // 7, date.weekday()
        if offset < days // 2 and weekday in (0, 2, 4):
            program = five_by_five
            day_name, entries = program.days[session[program.name] % len(program.days)]
        elif offset >= days // 2 and weekday in (0, 1, 3, 4):
            program = push_pull_legs
            day_name, entries = program.days[session[program.name] % len(program.days)]
        elif weekday == 6 and week in (1, 4):
            plan.append(_PlannedWorkout(date, None, "Hotel gym", demo_data.AD_HOC_DAY))
            continue
        else:
            continue
        session[program.name] += 1
        plan.append(_PlannedWorkout(date, program.name, day_name, entries))

    # Progressive overload: each exercise ends at its working weight and climbs one step per
    # session to get there; bodyweight movements add a rep every other session instead.
    appearances = Counter(name for workout in plan for name, _sets, _reps in workout.entries)
    seen = Counter[str]()
    for workout in plan:
        remark = rng.choice(_SESSION_REMARKS)
        label = f"{workout.program} · {workout.day}" if workout.program else workout.day
        workout.notes = f"{DEMO_TAG} {label}" + (f" — {remark}" if remark else "")
        for position, (name, target_sets, target_reps) in enumerate(workout.entries):
            spec = _EXERCISE_SPECS[name]
            sessions_left = appearances[name] - 1 - seen[name]
            seen[name] += 1
            weight = _round_to_step(spec.working_kg - spec.step * sessions_left, spec.step)
            reps = target_reps
            if spec.step <= 0:
                reps = max(1, target_reps - sessions_left // 2)
            for set_index in range(target_sets):
                done, rpe = reps, None
                if position == 0 or rng.random() < 0.5:
                    value = 7 + set_index * 0.5 + rng.choice((-0.5, 0, 0, 0.5))
                    rpe = Decimal(str(min(10.0, max(6.0, value))))
                if set_index == target_sets - 1 and reps > 3 and rng.random() < 0.1:
                    done, rpe = reps - rng.choice((1, 2)), Decimal("10")
                workout.sets.append(_PlannedSet(name, done, _kg(weight), rpe))
    return plan


def _plan_body_metrics(
    *, start: dt.date, days: int, rng: random.Random
) -> dict[dt.date, tuple[Decimal, Decimal | None, str]]:
    """Morning weigh-ins on most days trending down ~1.5 kg; body fat measured on Mondays."""
    plan: dict[dt.date, tuple[Decimal, Decimal | None, str]] = {}
    for offset in range(days):
        date = start + dt.timedelta(days=offset)
        weight = 82.6 - 0.035 * offset + rng.gauss(0, 0.35)
        body_fat = 18.4 - 0.02 * offset + rng.gauss(0, 0.3)
        if rng.random() < 0.15:
            continue  # skipped a day, as people do
        if date.weekday() == 0:
            plan[date] = (
                Decimal(f"{weight:.1f}"),
                Decimal(f"{body_fat:.1f}"),
                f"{DEMO_TAG} Morning weigh-in; body fat by calipers",
            )
        else:
            plan[date] = (Decimal(f"{weight:.1f}"), None, f"{DEMO_TAG} Morning weigh-in")
    return plan


@dataclass(frozen=True)
class SeedResult:
    exercises_created: int
    programs_created: int
    workouts_created: int
    workouts_updated: int
    workouts_deleted: int
    body_metrics_created: int
    body_metrics_updated: int
    body_metrics_deleted: int


def seed_demo_data(
    *, using: str = DEFAULT_DB_ALIAS, seed: int = 42, today: dt.date | None = None
) -> SeedResult:
    """Load the demo catalogue and the last ``DEMO_WEEKS`` weeks of workouts and body metrics.

    Idempotent: the catalogue is get-or-created, and the dated demo rows (notes starting with
    ``DEMO_TAG``) are brought in line with a plan that depends only on ``seed`` and ``today``:
    missing rows are created, changed ones updated, stale ones (e.g. from an older run) deleted.
    A body metric the user entered on a demo date is left alone.
    """
    today = today or local_today()
    days = DEMO_WEEKS * 7
    start = today - dt.timedelta(days=days - 1)
    workout_plan = _plan_demo_workouts(start=start, days=days, rng=_rng(seed))
    metric_plan = _plan_body_metrics(start=start, days=days, rng=_rng(seed + 1))

    with transaction.atomic(using=using):
        catalogue = ensure_catalogue(using=using)
        workouts = _sync_demo_workouts(using=using, plan=workout_plan, catalogue=catalogue)
        metrics = _sync_demo_body_metrics(using=using, plan=metric_plan, start=start, end=today)
    return SeedResult(catalogue.exercises_created, catalogue.programs_created, *workouts, *metrics)


def _sync_demo_workouts(
    *, using: str, plan: list[_PlannedWorkout], catalogue: Catalogue
) -> tuple[int, int, int]:
    existing = {
        workout.date: workout
        for workout in Workout.objects.using(using)
        .filter(notes__startswith=DEMO_TAG)
        .prefetch_related("sets")
        .order_by("pk")
    }
    created = updated = 0
    for planned in plan:
        program = catalogue.programs[planned.program] if planned.program else None
        wanted_sets = [
            WorkoutSet(
                exercise=catalogue.exercises[item.exercise],
                order=order,
                reps=item.reps,
                weight=item.weight,
                rpe=item.rpe,
            )
            for order, item in enumerate(planned.sets, start=1)
        ]
        workout = existing.pop(planned.date, None)
        if workout is None:
            workout = Workout.objects.using(using).create(
                date=planned.date, program=program, notes=planned.notes
            )
            created += 1
        else:
            have = [_set_key(item) for item in workout.sets.all()]
            if (
                workout.program_id == (program.pk if program else None)
                and workout.notes == planned.notes
                and have == [_set_key(item) for item in wanted_sets]
            ):
                continue
            workout.program, workout.notes = program, planned.notes
            workout.save(using=using, update_fields=["program", "notes", "modified"])
            WorkoutSet.objects.using(using).filter(workout=workout).delete()
            updated += 1
        for item in wanted_sets:
            item.workout = workout
        WorkoutSet.objects.using(using).bulk_create(wanted_sets)
    stale = [workout.pk for workout in existing.values()]
    if stale:
        Workout.objects.using(using).filter(pk__in=stale).delete()
    return created, updated, len(stale)


def _set_key(item: WorkoutSet) -> tuple[object, ...]:
    return (item.exercise_id, item.order, item.reps, item.weight, item.rpe)


def _sync_demo_body_metrics(
    *,
    using: str,
    plan: dict[dt.date, tuple[Decimal, Decimal | None, str]],
    start: dt.date,
    end: dt.date,
) -> tuple[int, int, int]:
    metrics = BodyMetric.objects.using(using)
    deleted, _ = metrics.filter(notes__startswith=DEMO_TAG).exclude(date__range=(start, end)).delete()
    existing = {metric.date: metric for metric in metrics.filter(date__range=(start, end))}
    to_create: list[BodyMetric] = []
    updated = 0
    for date, (weight, body_fat, notes) in plan.items():
        metric = existing.pop(date, None)
        if metric is None:
            to_create.append(BodyMetric(date=date, weight_kg=weight, body_fat_percent=body_fat, notes=notes))
        elif metric.notes.startswith(DEMO_TAG) and (
            (metric.weight_kg, metric.body_fat_percent, metric.notes) != (weight, body_fat, notes)
        ):
            metric.weight_kg, metric.body_fat_percent, metric.notes = weight, body_fat, notes
            metric.save(using=using)
            updated += 1
    metrics.bulk_create(to_create)
    stale = [m.pk for m in existing.values() if m.notes.startswith(DEMO_TAG)]
    if stale:
        deleted += metrics.filter(pk__in=stale).delete()[0]
    return len(to_create), updated, deleted


# --- bulk workouts for load testing ---------------------------------------------------


@dataclass(frozen=True)
class BulkResult:
    workouts_created: int
    sets_created: int
    workouts_deleted: int
    workouts_total: int
    seconds: float


_Template = tuple[int, str, list[tuple[int, int, float, float]]]


def _bulk_templates(catalogue: Catalogue) -> list[_Template]:
    """One template per program day: (program pk, label, [(exercise pk, reps, kg, step), …])."""
    templates = []
    for spec in demo_data.PROGRAMS:
        for day_name, entries in spec.days:
            templates.append(
                (
                    catalogue.programs[spec.name].pk,
                    f"{spec.name} · {day_name}",
                    [
                        (
                            catalogue.exercises[name].pk,
                            reps,
                            _EXERCISE_SPECS[name].working_kg,
                            _EXERCISE_SPECS[name].step,
                        )
                        for name, _sets, reps in entries
                    ],
                )
            )
    return templates


def generate_bulk_workouts(
    *,
    workouts: int,
    sets_per_workout: int,
    using: str = DEFAULT_DB_ALIAS,
    seed: int = 42,
    today: dt.date | None = None,
    batch_size: int = 5000,
    progress: ProgressCallback | None = None,
) -> BulkResult:
    """Make exactly ``workouts`` generated workouts (notes start with ``BULK_TAG``) exist.

    Tops up: existing generated workouts are kept and only the missing ones are created, so a
    re-run with the same numbers does nothing. Surplus ones (a smaller ``workouts``, 0 removes
    them all) are deleted newest-first. If the existing ones do not have ``sets_per_workout``
    sets each, they are all deleted and regenerated. Workout ``i`` depends only on ``seed`` and
    ``i``, so topping up gives the same data as generating at once.

    Each transaction inserts about ``batch_size`` sets: the workouts with ``bulk_create``, their
    sets with one ``executemany`` (see ``_insert_bulk_batch``). ``progress(done, total)`` is
    called after each transaction with the number of workouts created so far.
    """
    started = time.monotonic()
    today = today or local_today()
    anchor = today - dt.timedelta(days=DEMO_WEEKS * 7)  # the day before the demo weeks
    catalogue = ensure_catalogue(using=using)
    generated = Workout.objects.using(using).filter(notes__startswith=BULK_TAG)

    deleted = 0
    existing = generated.count()
    if existing:
        existing_sets = WorkoutSet.objects.using(using).filter(workout__notes__startswith=BULK_TAG)
        if existing_sets.count() != existing * sets_per_workout:
            deleted += _delete_workouts(using, generated.values_list("pk", flat=True))
            existing = 0
    if existing > workouts:
        surplus = generated.order_by("-pk").values_list("pk", flat=True)[: existing - workouts]
        deleted += _delete_workouts(using, surplus)
        existing = workouts

    templates = _bulk_templates(catalogue)
    per_batch = max(1, batch_size // sets_per_workout)
    total = workouts - existing
    created_sets = 0
    for first in range(existing, workouts, per_batch):
        indexes = range(first, min(first + per_batch, workouts))
        with transaction.atomic(using=using):
            created_sets += _insert_bulk_batch(using, indexes, sets_per_workout, seed, anchor, templates)
        if progress is not None:
            progress(indexes.stop - existing, total)
    return BulkResult(
        workouts_created=total,
        sets_created=created_sets,
        workouts_deleted=deleted,
        workouts_total=workouts,
        seconds=time.monotonic() - started,
    )


def _insert_bulk_batch(
    using: str,
    indexes: range,
    sets_per_workout: int,
    seed: int,
    anchor: dt.date,
    templates: list[_Template],
) -> int:
    """Insert the generated workouts ``indexes`` and their sets; returns the number of sets."""
    era_length = 120  # a program is followed for 120 workouts, then the next one
    rngs = [_rng(seed * 1_000_003 + index) for index in indexes]
    new_workouts = []
    chosen = []
    for index in indexes:
        first, count = _PROGRAM_DAY_SLICES[(index // era_length) % len(_PROGRAM_DAY_SLICES)]
        template = templates[first + index % count]
        chosen.append(template)
        age = index % BULK_SPAN_DAYS
        new_workouts.append(
            Workout(
                date=anchor - dt.timedelta(days=age + 1),
                program_id=template[0],
                notes=f"{BULK_TAG} #{index + 1} {template[1]}",
            )
        )
    workouts = Workout.objects.using(using)
    returns_ids = connections[using].features.can_return_rows_from_bulk_insert
    newest = 0 if returns_ids else workouts.aggregate(newest=Max("pk"))["newest"] or 0
    workouts.bulk_create(new_workouts)
    if not returns_ids:  # MySQL: look the new ids up by their (per-index) notes
        just_created = workouts.filter(pk__gt=newest, notes__in=[w.notes for w in new_workouts])
        ids = dict(just_created.values_list("notes", "pk"))
        for workout in new_workouts:
            workout.pk = ids[workout.notes]

    # The sets go in through executemany rather than bulk_create: the ORM prepares every value
    # of every row one by one (~40 µs a row), while here each distinct value is prepared once by
    # its field, which makes a million sets about six times faster on any backend.
    connection = connections[using]
    now = timezone.now()
    fields = [WorkoutSet._meta.get_field(name) for name in _SET_COLUMNS]
    created, modified = (f.get_db_prep_save(now, connection) for f in fields[:2])
    weight_field, rpe_field = fields[6], fields[7]
    weights: dict[Decimal, Any] = {}
    rpes = [rpe_field.get_db_prep_save(value, connection) for value in _RPE_VALUES]
    rows = []
    for index, rng, workout, template in zip(indexes, rngs, new_workouts, chosen, strict=True):
        # Older = lighter; the history ends below where the demo weeks restart linear progression.
        factor = 0.7 - 0.25 * (index % BULK_SPAN_DAYS) / BULK_SPAN_DAYS
        entries = template[2]
        per_exercise, extra = divmod(sets_per_workout, len(entries))
        order = 0
        for position, (exercise_id, reps, working_kg, step) in enumerate(entries):
            kg = _kg(_round_to_step(working_kg * factor * rng.uniform(0.96, 1.04), step))
            weight = weights.get(kg)
            if weight is None:
                weight = weights[kg] = weight_field.get_db_prep_save(kg, connection)
            for set_index in range(per_exercise + (position < extra)):
                order += 1
                done, rpe = reps, None
                if set_index and rng.random() < 0.1:
                    done, rpe = max(1, reps - rng.randint(1, 2)), rpes[-1]  # missed reps: RPE 10
                elif rng.random() < 0.6:  # RPE is logged on most sets and climbs set by set
                    rpe = rpes[min(len(rpes) - 2, set_index + rng.randrange(4))]
                rows.append((created, modified, workout.pk, exercise_id, order, done, weight, rpe))
    _insert_rows(using, WorkoutSet, fields, rows)
    return len(rows)


#: WorkoutSet columns in the order _insert_bulk_batch builds its rows.
_SET_COLUMNS = ("created", "modified", "workout", "exercise", "order", "reps", "weight", "rpe")


def _insert_rows(
    using: str, model: type[models.Model], fields: list[models.Field], rows: list[tuple]
) -> None:
    """INSERT already-prepared ``rows`` into ``model``'s table with one executemany."""
    if not rows:
        return
    connection = connections[using]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({placeholders})",
            rows,
        )


def _program_day_slices() -> list[tuple[int, int]]:
    """(first template index, number of days) per demo program, in catalogue order."""
    slices, first = [], 0
    for spec in demo_data.PROGRAMS:
        slices.append((first, len(spec.days)))
        first += len(spec.days)
    return slices


_PROGRAM_DAY_SLICES = _program_day_slices()


def _delete_workouts(using: str, pks: Iterable[int], chunk: int = 500) -> int:
    """Delete workouts (and, by cascade, their sets) in chunks; returns how many."""
    pks = list(pks)
    deleted = 0
    for first in range(0, len(pks), chunk):
        with transaction.atomic(using=using):
            _total, per_model = (
                Workout.objects.using(using).filter(pk__in=pks[first : first + chunk]).delete()
            )
        deleted += per_model.get(Workout._meta.label, 0)
    return deleted
