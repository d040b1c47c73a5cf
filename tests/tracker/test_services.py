"""Queries shared by the admin and the home page."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from fitnessdb.tracker.models import Workout
from fitnessdb.tracker.services import count_rows, get_dashboard, with_totals

pytestmark = pytest.mark.django_db


def test_with_totals__counts_sets_and_sums_volume(workout):
    empty = Workout.objects.create(date=dt.date(2025, 1, 1))
    totals = {w.pk: (w.set_count, w.total_volume) for w in with_totals(Workout.objects.all())}
    assert totals[workout.pk] == (3, Decimal("1537.5"))  # 5 × (100 + 102.5 + 105)
    assert totals[empty.pk] == (0, None)


def test_count_rows__empty_database(db):
    counts = count_rows()
    assert (counts.exercises, counts.programs, counts.workouts, counts.sets) == (0, 0, 0, 0)
    assert counts.body_metrics == 0


def test_get_dashboard__latest_workouts_newest_first_and_limited(exercise):
    for day in range(1, 8):
        Workout.objects.create(date=dt.date(2025, 1, day))
    dashboard = get_dashboard(latest=5)
    assert [w.date.day for w in dashboard.latest_workouts] == [7, 6, 5, 4, 3]
    assert dashboard.counts.workouts == 7
    assert dashboard.latest_body_metric is None
