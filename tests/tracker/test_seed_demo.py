"""``manage.py seed_demo``: realistic, idempotent demo data and fast bulk generation."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from fitnessdb.tracker import demo_data
from fitnessdb.tracker.demo import BULK_TAG, DEMO_TAG, DEMO_WEEKS, local_today, seed_demo_data
from fitnessdb.tracker.models import (
    BodyMetric,
    Exercise,
    Program,
    ProgramExercise,
    Workout,
    WorkoutSet,
)
from fitnessdb.tracker.services import count_rows

pytestmark = pytest.mark.django_db


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def bulk_sets() -> int:
    return WorkoutSet.objects.filter(workout__notes__startswith=BULK_TAG).count()


def bulk_workouts() -> int:
    return Workout.objects.filter(notes__startswith=BULK_TAG).count()


def test_seed_demo__creates_catalogue_workouts_and_metrics(db):
    output = seed()
    counts = count_rows()
    assert counts.exercises == len(demo_data.EXERCISES)
    assert counts.programs == len(demo_data.PROGRAMS)
    expected_entries = sum(len(e) for p in demo_data.PROGRAMS for _d, e in p.days)
    assert ProgramExercise.objects.count() == expected_entries
    assert 18 <= counts.workouts <= 30  # ~4 a week for 6 weeks; the weekdays depend on today
    assert counts.sets > 10 * counts.workouts
    assert 25 <= counts.body_metrics <= DEMO_WEEKS * 7
    assert f"{counts.sets:,} sets" in output
    assert "Demo data ready in 'default'" in output


def test_seed_demo__exercises_have_real_muscle_groups_and_equipment(db):
    seed()
    squat = Exercise.objects.get(name="Back Squat")
    assert (squat.muscle_group, squat.equipment) == ("quadriceps", "barbell")
    assert Exercise.objects.get(name="Lat Pulldown").equipment == "cable"
    assert Exercise.objects.get(name="Pull-up").muscle_group == "back"
    assert set(Program.objects.values_list("name", flat=True)) >= {
        "Push/Pull/Legs",
        "5x5 Strength",
    }


def test_seed_demo__workouts_show_progressive_overload(db):
    seed()
    squat_weights = [
        s.weight
        for s in WorkoutSet.objects.filter(exercise__name="Back Squat", order=1).order_by("workout__date")
    ]
    assert len(squat_weights) >= 6
    assert squat_weights == sorted(squat_weights)
    assert squat_weights[-1] > squat_weights[0]


def test_seed_demo__demo_rows_are_recent_and_tagged(db):
    seed()
    today = local_today()
    start = today - dt.timedelta(days=DEMO_WEEKS * 7 - 1)
    dates = Workout.objects.values_list("date", flat=True)
    assert min(dates) >= start
    assert max(dates) <= today
    assert not Workout.objects.exclude(notes__startswith=DEMO_TAG).exists()
    assert not BodyMetric.objects.exclude(notes__startswith=DEMO_TAG).exists()


def test_seed_demo__running_twice_gives_same_counts(db):
    seed()
    first = count_rows()
    sets_before = list(WorkoutSet.objects.values_list("pk", "weight", "reps", "rpe"))
    output = seed()
    assert count_rows() == first
    assert list(WorkoutSet.objects.values_list("pk", "weight", "reps", "rpe")) == sets_before
    assert "0 exercises and 0 programs created" in output


def test_seed_demo__keeps_user_rows(db):
    """A user's own exercise (any case) is reused and their body metric is left untouched."""
    mine = Exercise.objects.create(name="back squat", muscle_group="glutes", equipment="machine")
    today = local_today()
    metric = BodyMetric.objects.create(date=today, weight_kg=Decimal("70.00"), notes="mine")
    seed()
    assert Exercise.objects.filter(name__iexact="back squat").count() == 1
    mine.refresh_from_db()
    assert (mine.name, mine.muscle_group) == ("back squat", "glutes")
    metric.refresh_from_db()
    assert (metric.weight_kg, metric.notes) == (Decimal("70.00"), "mine")


def test_seed_demo__rerun_on_a_later_day_replaces_stale_demo_rows(db):
    today = local_today()
    seed_demo_data(today=today - dt.timedelta(days=10))
    seed()
    start = today - dt.timedelta(days=DEMO_WEEKS * 7 - 1)
    assert not Workout.objects.filter(date__lt=start).exists()
    assert not BodyMetric.objects.filter(date__lt=start).exists()
    fresh = count_rows()
    Workout.objects.all().delete()
    BodyMetric.objects.all().delete()
    seed()
    assert count_rows() == fresh


def test_seed_demo__workouts_option_creates_expected_sets(db):
    seed("--workouts", "50", "--sets-per-workout", "4")
    assert bulk_workouts() == 50
    assert bulk_sets() == 200


def test_seed_demo__workouts_default_to_ten_sets_each(db):
    seed("--workouts", "20")
    assert bulk_sets() == 200


def test_seed_demo__bulk_rerun_does_not_duplicate(db):
    seed("--workouts", "30", "--sets-per-workout", "3")
    counts = count_rows()
    output = seed("--workouts", "30", "--sets-per-workout", "3")
    assert count_rows() == counts
    assert "0 created (0 sets), 0 deleted, 30 in total" in output


def test_seed_demo__smaller_target_deletes_surplus_and_zero_removes_all(db):
    seed("--workouts", "30", "--sets-per-workout", "2")
    seed("--workouts", "12", "--sets-per-workout", "2")
    assert (bulk_workouts(), bulk_sets()) == (12, 24)
    assert Workout.objects.filter(notes__startswith=f"{BULK_TAG} #12 ").exists()
    seed("--workouts", "0")
    assert (bulk_workouts(), bulk_sets()) == (0, 0)


def test_seed_demo__other_sets_per_workout_regenerates(db):
    seed("--workouts", "10", "--sets-per-workout", "2")
    seed("--workouts", "10", "--sets-per-workout", "5")
    assert (bulk_workouts(), bulk_sets()) == (10, 50)


def test_seed_demo__topping_up_gives_the_same_data_as_one_run(db):
    """Generated workout i depends only on the seed and i."""

    def snapshot() -> list[tuple[object, ...]]:
        return list(
            WorkoutSet.objects.filter(workout__notes__startswith=BULK_TAG)
            .order_by("workout__notes", "order")
            .values_list("workout__date", "workout__notes", "exercise", "reps", "weight", "rpe")
        )

    seed("--workouts", "25", "--sets-per-workout", "6")
    at_once = snapshot()
    seed("--workouts", "0")
    seed("--workouts", "10", "--sets-per-workout", "6")
    seed("--workouts", "25", "--sets-per-workout", "6")
    assert snapshot() == at_once


def test_seed_demo__generated_sets_respect_constraints_and_look_real(db):
    seed("--workouts", "40", "--sets-per-workout", "8", "--seed", "7")
    generated = WorkoutSet.objects.filter(workout__notes__startswith=BULK_TAG)
    assert not generated.filter(reps__lt=1).exists()
    assert not generated.filter(weight__lt=0).exists()
    assert not generated.filter(rpe__gt=10).exists()
    assert generated.filter(rpe__isnull=True).exists()
    assert generated.filter(weight__gt=20).exists()
    per_workout = set(Workout.objects.filter(notes__startswith=BULK_TAG).values_list("program", flat=True))
    assert None not in per_workout


def test_seed_demo__prints_progress_in_steps(db):
    output = seed("--workouts", "50", "--sets-per-workout", "5", "--batch-size", "25")
    assert "   10% · 5/50 workouts" in output
    assert "  100% · 50/50 workouts" in output
    assert output.count("% · ") == 10


def test_seed_demo__scale_small_preset(db):
    seed("--scale", "small", "--workouts", "15")
    assert (bulk_workouts(), bulk_sets()) == (15, 150)


def test_seed_demo__quiet_with_verbosity_zero(db):
    out = StringIO()
    call_command("seed_demo", "--workouts", "5", verbosity=0, stdout=out)
    assert out.getvalue() == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workouts", "-1"], "--workouts must be 0 or more, got -1"),
        (["--workouts", "5", "--sets-per-workout", "0"], "--sets-per-workout must be between"),
        (["--workouts", "5", "--sets-per-workout", "101"], "between 1 and 100, got 101"),
        (["--sets-per-workout", "5"], "--sets-per-workout needs --workouts N or --scale"),
        (["--batch-size", "0"], "--batch-size must be 1 or more, got 0"),
        (["--scale", "gigantic"], "invalid choice: 'gigantic'"),
        (["--database", "nope"], "invalid choice: 'nope'"),
        (["--workouts", "many"], "invalid int value: 'many'"),
    ],
)
def test_seed_demo__bad_option_raises_command_error(db, args, message):
    with pytest.raises(CommandError, match=message):
        seed(*args)
    assert count_rows().exercises == 0  # validated before touching the database


def test_seed_demo__backend_without_bulk_returning_links_sets_to_new_workouts(db, monkeypatch):
    """MySQL's bulk_create returns no ids; the generator looks them up by their notes."""
    from django.db import connection

    seed("--workouts", "3", "--sets-per-workout", "2")
    monkeypatch.setattr(type(connection.features), "can_return_rows_from_bulk_insert", False)
    seed("--workouts", "8", "--sets-per-workout", "2")
    generated = Workout.objects.filter(notes__startswith=BULK_TAG)
    assert generated.count() == 8
    assert all(w.sets.count() == 2 for w in generated)


def test_seed_demo__database_error_becomes_one_line_command_error(db, monkeypatch):
    from django.db import OperationalError

    from fitnessdb.tracker.management.commands import seed_demo as command

    def broken(**kwargs: object) -> None:
        raise OperationalError("no such table: tracker_exercise")

    monkeypatch.setattr(command, "seed_demo_data", broken)
    with pytest.raises(CommandError, match=r"no such table: tracker_exercise \(run `python"):
        seed()


def test_seed_demo__if_empty_leaves_a_database_with_data_alone():
    """run.sh seeds at every start: an edited demo workout must not come back or be duplicated."""
    seed("--if-empty")
    workout = Workout.objects.order_by("date").first()
    workout.notes = "edited by the user"
    workout.save()
    before = count_rows()
    out = seed("--if-empty")
    assert "already holds tracker data: not seeding" in out
    assert count_rows() == before
    workout.refresh_from_db()
    assert workout.notes == "edited by the user"
