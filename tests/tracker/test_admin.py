"""The tracker admin: every page renders for a superuser, totals come without N+1 queries."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from fitnessdb.tracker.models import Exercise, Program, Workout, WorkoutSet

pytestmark = pytest.mark.django_db

MODELS = ["exercise", "program", "workout", "workoutset", "bodymetric"]


@pytest.fixture
def objects(exercise, program, workout, body_metric) -> dict[str, int]:
    """The pk of one saved row per admin model."""
    return {
        "exercise": exercise.pk,
        "program": program.pk,
        "workout": workout.pk,
        "workoutset": workout.sets.first().pk,
        "bodymetric": body_metric.pk,
    }


@pytest.mark.parametrize("model", MODELS)
def test_admin_changelist__renders_for_superuser(admin_client, objects, model):
    response = admin_client.get(reverse(f"admin:tracker_{model}_changelist"))
    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


@pytest.mark.parametrize("model", MODELS)
def test_admin_add_form__renders_for_superuser(admin_client, model):
    assert admin_client.get(reverse(f"admin:tracker_{model}_add")).status_code == 200


@pytest.mark.parametrize("model", MODELS)
def test_admin_change_form__renders_for_superuser(admin_client, objects, model):
    url = reverse(f"admin:tracker_{model}_change", args=[objects[model]])
    assert admin_client.get(url).status_code == 200


@pytest.mark.parametrize("model", MODELS)
def test_admin_changelist__search_and_filters_render(admin_client, objects, model):
    response = admin_client.get(reverse(f"admin:tracker_{model}_changelist"), {"q": "squat"})
    assert response.status_code == 200


def test_admin_changelist__anonymous_user_redirected_to_login(client):
    response = client.get(reverse("admin:tracker_workout_changelist"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_workout_changelist__shows_set_count_and_volume(admin_client, workout):
    response = admin_client.get(reverse("admin:tracker_workout_changelist"))
    content = response.content.decode()
    assert '<td class="field-set_count">3</td>' in content
    assert '<td class="field-total_volume">1,538 kg</td>' in content  # 1,537.5 rounded


def test_workout_changelist__sorts_by_set_count(admin_client, workout):
    Workout.objects.create(date=dt.date(2025, 3, 15))
    url = reverse("admin:tracker_workout_changelist")
    ascending = admin_client.get(url, {"o": "3"}).context["cl"].result_list
    descending = admin_client.get(url, {"o": "-3"}).context["cl"].result_list
    assert [w.set_count for w in ascending] == [0, 3]
    assert [w.set_count for w in descending] == [3, 0]


def test_workout_changelist__query_count_does_not_grow_with_rows(admin_client, workout, exercise):
    """Set counts and volumes are annotated, not fetched per row."""
    url = reverse("admin:tracker_workout_changelist")
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    for day in range(1, 11):
        other = Workout.objects.create(date=dt.date(2024, 1, day), program=workout.program)
        WorkoutSet.objects.create(workout=other, exercise=exercise, order=1, reps=5, weight=60)
    with CaptureQueriesContext(connection) as many:
        admin_client.get(url)
    assert len(many) == len(few)


def test_workoutset_changelist__query_count_does_not_grow_with_rows(admin_client, workout):
    url = reverse("admin:tracker_workoutset_changelist")
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    exercise = Exercise.objects.create(name="Deadlift", muscle_group="back", equipment="barbell")
    for day in range(1, 11):
        other = Workout.objects.create(date=dt.date(2024, 1, day), program=workout.program)
        WorkoutSet.objects.create(workout=other, exercise=exercise, order=1, reps=5, weight=60)
    with CaptureQueriesContext(connection) as many:
        admin_client.get(url)
    assert len(many) == len(few)


def test_workout_add__saves_workout_with_inline_sets(admin_client, exercise):
    prefix = "sets"
    data = {
        "date": "2025-04-01",
        "program": "",
        "notes": "Logged from the admin",
        f"{prefix}-TOTAL_FORMS": "2",
        f"{prefix}-INITIAL_FORMS": "0",
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
        f"{prefix}-0-order": "1",
        f"{prefix}-0-exercise": str(exercise.pk),
        f"{prefix}-0-reps": "5",
        f"{prefix}-0-weight": "100",
        f"{prefix}-0-rpe": "8",
        f"{prefix}-1-order": "2",
        f"{prefix}-1-exercise": str(exercise.pk),
        f"{prefix}-1-reps": "5",
        f"{prefix}-1-weight": "100",
        f"{prefix}-1-rpe": "",
    }
    response = admin_client.post(reverse("admin:tracker_workout_add"), data)
    assert response.status_code == 302, response.context["errors"] if response.context else ""
    workout = Workout.objects.get(notes="Logged from the admin")
    assert [(s.order, s.reps, s.rpe) for s in workout.sets.all()] == [(1, 5, 8), (2, 5, None)]


def test_workout_add__rpe_out_of_range_shows_form_error(admin_client, exercise):
    data = {
        "date": "2025-04-01",
        "sets-TOTAL_FORMS": "1",
        "sets-INITIAL_FORMS": "0",
        "sets-0-order": "1",
        "sets-0-exercise": str(exercise.pk),
        "sets-0-reps": "5",
        "sets-0-weight": "100",
        "sets-0-rpe": "11",
    }
    response = admin_client.post(reverse("admin:tracker_workout_add"), data)
    assert response.status_code == 200
    assert "Ensure this value is less than or equal to 10." in response.content.decode()
    assert not Workout.objects.exists()


def test_program_change__inline_lists_exercises_in_order(admin_client, program):
    response = admin_client.get(reverse("admin:tracker_program_change", args=[program.pk]))
    assert "1. Back Squat 5×5" in response.content.decode()


def test_program_changelist__counts_exercises_and_workouts(admin_client, workout, program):
    response = admin_client.get(reverse("admin:tracker_program_changelist"))
    (row,) = response.context["cl"].result_list
    assert (row.exercise_count, row.workout_count) == (1, 1)
    Program.objects.create(name="Empty")
    response = admin_client.get(reverse("admin:tracker_program_changelist"))
    counts = {p.name: (p.exercise_count, p.workout_count) for p in response.context["cl"].result_list}
    assert counts["Empty"] == (0, 0)


def test_exercise_autocomplete__finds_exercise_for_inlines(admin_client, exercise):
    response = admin_client.get(
        reverse("admin:autocomplete"),
        {
            "term": "squ",
            "app_label": "tracker",
            "model_name": "workoutset",
            "field_name": "exercise",
        },
    )
    assert response.status_code == 200
    assert [r["text"] for r in response.json()["results"]] == ["Back Squat"]
