"""Tracker fixtures: one saved row of each model, built through the ORM."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

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


@pytest.fixture
def exercise(db) -> Exercise:
    return Exercise.objects.create(
        name="Back Squat", muscle_group=MuscleGroup.QUADRICEPS, equipment=Equipment.BARBELL
    )


@pytest.fixture
def program(exercise: Exercise) -> Program:
    program = Program.objects.create(name="5x5 Strength", description="Squat every session.")
    ProgramExercise.objects.create(program=program, exercise=exercise, order=1, target_sets=5, target_reps=5)
    return program


@pytest.fixture
def workout(program: Program, exercise: Exercise) -> Workout:
    workout = Workout.objects.create(date=dt.date(2025, 3, 14), program=program, notes="Heavy day")
    for order, weight in enumerate(("100", "102.5", "105"), start=1):
        WorkoutSet.objects.create(
            workout=workout, exercise=exercise, order=order, reps=5, weight=Decimal(weight)
        )
    return workout


@pytest.fixture
def body_metric(db) -> BodyMetric:
    return BodyMetric.objects.create(
        date=dt.date(2025, 3, 14), weight_kg=Decimal("81.40"), body_fat_percent=Decimal("17.5")
    )
