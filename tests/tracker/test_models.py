"""Model constraints (enforced by the database) and string representations."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from fitnessdb.tracker.models import (
    BodyMetric,
    Equipment,
    Exercise,
    MuscleGroup,
    Program,
    ProgramExercise,
    Workout,
    WorkoutSet,
)

pytestmark = pytest.mark.django_db


def _set(workout: Workout, exercise: Exercise, **overrides: object) -> WorkoutSet:
    values = {"workout": workout, "exercise": exercise, "order": 10, "reps": 5, "weight": 100}
    return WorkoutSet.objects.create(**{**values, **overrides})


def test_workoutset__zero_reps_rejected_by_database(workout, exercise):
    with (
        pytest.raises(IntegrityError, match="tracker_workoutset_reps_positive"),
        transaction.atomic(),
    ):
        _set(workout, exercise, reps=0)


def test_workoutset__negative_weight_rejected_by_database(workout, exercise):
    with (
        pytest.raises(IntegrityError, match="tracker_workoutset_weight_non_negative"),
        transaction.atomic(),
    ):
        _set(workout, exercise, weight=Decimal("-1"))


@pytest.mark.parametrize("rpe", [Decimal("11"), Decimal("0.5")])
def test_workoutset__rpe_outside_1_to_10_rejected_by_database(workout, exercise, rpe):
    with pytest.raises(IntegrityError, match="tracker_workoutset_rpe_range"), transaction.atomic():
        _set(workout, exercise, rpe=rpe)


@pytest.mark.parametrize("rpe", [None, Decimal("1"), Decimal("7.5"), Decimal("10")])
def test_workoutset__rpe_empty_or_in_range_accepted(workout, exercise, rpe):
    assert _set(workout, exercise, rpe=rpe).pk is not None


def test_workoutset__zero_weight_accepted_for_bodyweight_sets(workout, exercise):
    assert _set(workout, exercise, weight=0).pk is not None


def test_workoutset__duplicate_order_in_a_workout_rejected(workout, exercise):
    with pytest.raises(IntegrityError), transaction.atomic():
        _set(workout, exercise, order=1)


def test_workoutset__same_order_in_another_workout_accepted(workout, exercise):
    other = Workout.objects.create(date=dt.date(2025, 3, 15))
    assert _set(other, exercise, order=1).pk is not None


def test_workoutset__full_clean_reports_constraint_messages(workout, exercise):
    """Admin forms show the constraint's message instead of failing with an IntegrityError."""
    candidate = WorkoutSet(workout=workout, exercise=exercise, order=1, reps=5, weight=1)
    with pytest.raises(ValidationError) as excinfo:
        candidate.full_clean()
    assert "This workout already has a set at this order." in str(excinfo.value)


def test_workoutset__deleting_workout_deletes_its_sets(workout):
    workout.delete()
    assert WorkoutSet.objects.count() == 0


def test_exercise__used_in_a_set_cannot_be_deleted(workout, exercise):
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        exercise.delete()


def test_exercise__duplicate_name_differing_only_in_case_rejected(exercise):
    with pytest.raises(IntegrityError), transaction.atomic():
        Exercise.objects.create(
            name="back squat", muscle_group=MuscleGroup.QUADRICEPS, equipment=Equipment.BARBELL
        )


def test_exercise__duplicate_name_case_insensitive_fails_validation(exercise):
    candidate = Exercise(name="BACK SQUAT", muscle_group=MuscleGroup.QUADRICEPS, equipment=Equipment.BARBELL)
    with pytest.raises(ValidationError, match="An exercise with this name already exists"):
        candidate.full_clean()


def test_exercise__unknown_muscle_group_rejected_by_database(db):
    with (
        pytest.raises(IntegrityError, match="tracker_exercise_muscle_group_valid"),
        transaction.atomic(),
    ):
        Exercise.objects.create(name="Curl", muscle_group="ears", equipment=Equipment.DUMBBELL)


def test_exercise__empty_name_rejected_by_database(db):
    with (
        pytest.raises(IntegrityError, match="tracker_exercise_name_not_empty"),
        transaction.atomic(),
    ):
        Exercise.objects.create(name="", muscle_group=MuscleGroup.CORE, equipment=Equipment.OTHER)


def test_program__duplicate_name_rejected(program):
    with pytest.raises(IntegrityError), transaction.atomic():
        Program.objects.create(name="5x5 Strength")


def test_programexercise__duplicate_order_in_a_program_rejected(program, exercise):
    with pytest.raises(IntegrityError), transaction.atomic():
        ProgramExercise.objects.create(program=program, exercise=exercise, order=1)


@pytest.mark.parametrize(
    ("field", "constraint"),
    [
        ("target_sets", "tracker_programexercise_target_sets_positive"),
        ("target_reps", "tracker_programexercise_target_reps_positive"),
    ],
)
def test_programexercise__zero_target_rejected_by_database(program, exercise, field, constraint):
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        ProgramExercise.objects.create(program=program, exercise=exercise, order=2, **{field: 0})


def test_workout__deleting_program_keeps_its_workouts(workout, program):
    program.program_exercises.all().delete()
    program.delete()
    workout.refresh_from_db()
    assert workout.program is None


@pytest.mark.parametrize("body_fat", [Decimal("101"), Decimal("-0.1")])
def test_bodymetric__body_fat_outside_0_to_100_rejected_by_database(db, body_fat):
    with (
        pytest.raises(IntegrityError, match="tracker_bodymetric_body_fat_range"),
        transaction.atomic(),
    ):
        BodyMetric.objects.create(
            date=dt.date(2025, 1, 1), weight_kg=Decimal("80"), body_fat_percent=body_fat
        )


def test_bodymetric__zero_weight_rejected_by_database(db):
    with (
        pytest.raises(IntegrityError, match="tracker_bodymetric_weight_positive"),
        transaction.atomic(),
    ):
        BodyMetric.objects.create(date=dt.date(2025, 1, 1), weight_kg=Decimal("0"))


def test_bodymetric__second_metric_on_a_date_rejected(body_metric):
    with pytest.raises(IntegrityError), transaction.atomic():
        BodyMetric.objects.create(date=body_metric.date, weight_kg=Decimal("80"))


def test_str__each_model_reads_naturally(exercise, program, workout, body_metric):
    assert str(exercise) == "Back Squat"
    assert str(program) == "5x5 Strength"
    assert str(program.program_exercises.get()) == "1. Back Squat 5×5"
    assert str(workout) == "2025-03-14 · 5x5 Strength"
    assert str(workout.sets.get(order=2)) == "Back Squat 5×102.5 kg"
    assert str(workout.sets.get(order=1)) == "Back Squat 5×100 kg"
    assert str(body_metric) == "2025-03-14: 81.4 kg, 17.5 % body fat"


def test_str__workout_without_program_and_metric_without_body_fat(db):
    workout = Workout.objects.create(date=dt.date(2025, 1, 2))
    metric = BodyMetric.objects.create(date=dt.date(2025, 1, 2), weight_kg=Decimal("79.00"))
    assert str(workout) == "Workout on 2025-01-02"
    assert str(metric) == "2025-01-02: 79 kg"


def test_workoutset__volume_is_reps_times_weight(workout):
    assert workout.sets.get(order=3).volume == Decimal("525")


def test_ordering__newest_workout_and_metric_first_sets_in_order(workout, exercise):
    older = Workout.objects.create(date=dt.date(2024, 1, 1))
    assert list(Workout.objects.all()) == [workout, older]
    assert [s.order for s in workout.sets.all()] == [1, 2, 3]
