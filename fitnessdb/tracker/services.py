"""Tracker queries shared by the admin and the home page; demo data lives in ``demo.py``."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS
from django.db.models import (
    Count,
    DecimalField,
    F,
    IntegerField,
    OuterRef,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce

from fitnessdb.tracker.models import BodyMetric, Exercise, Program, Workout, WorkoutSet


def with_totals(queryset: QuerySet[Workout]) -> QuerySet[Workout]:
    """Annotate workouts with ``set_count`` and ``total_volume`` (Σ reps × weight, kg).

    Correlated subqueries rather than a join with GROUP BY: a page of 100 workouts then costs 100
    index lookups instead of an aggregate over every set (seconds with a million sets).
    """
    sets = WorkoutSet.objects.filter(workout=OuterRef("pk")).order_by().values("workout")
    volume = DecimalField(max_digits=14, decimal_places=2)
    return queryset.annotate(
        set_count=Coalesce(
            Subquery(sets.annotate(n=Count("pk")).values("n"), output_field=IntegerField()),
            Value(0),
        ),
        total_volume=Subquery(
            sets.annotate(v=Sum(F("reps") * F("weight"), output_field=volume)).values("v"),
            output_field=volume,
        ),
    )


@dataclass(frozen=True)
class RowCounts:
    exercises: int
    programs: int
    workouts: int
    sets: int
    body_metrics: int


def count_rows(*, using: str = DEFAULT_DB_ALIAS) -> RowCounts:
    """Number of rows of each tracker model."""
    return RowCounts(
        exercises=Exercise.objects.using(using).count(),
        programs=Program.objects.using(using).count(),
        workouts=Workout.objects.using(using).count(),
        sets=WorkoutSet.objects.using(using).count(),
        body_metrics=BodyMetric.objects.using(using).count(),
    )


@dataclass(frozen=True)
class Dashboard:
    counts: RowCounts
    latest_workouts: list[Workout]
    latest_body_metric: BodyMetric | None


def get_dashboard(*, latest: int = 5, using: str = DEFAULT_DB_ALIAS) -> Dashboard:
    """Everything the home page shows, in a fixed number of queries."""
    workouts = with_totals(Workout.objects.using(using).select_related("program"))
    return Dashboard(
        counts=count_rows(using=using),
        latest_workouts=list(workouts[:latest]),
        latest_body_metric=BodyMetric.objects.using(using).first(),
    )
