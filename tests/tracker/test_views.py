"""The home page."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.urls import reverse

from fitnessdb.tracker.models import Workout

pytestmark = pytest.mark.django_db


def test_home__renders_on_empty_database(client):
    response = client.get(reverse("home"))
    assert response.status_code == 200
    content = response.content.decode()
    assert "No workouts yet" in content
    assert 'href="/admin/"' in content
    assert "createsuperuser" in content
    assert "<strong>0</strong>" in content


def test_home__a_signed_in_user_is_not_told_to_create_an_account(admin_client):
    content = admin_client.get(reverse("home")).content.decode()
    assert "createsuperuser" not in content
    assert "signed in as <strong>admin</strong>" in content


def test_favicon__served_on_every_page(client):
    """Browsers ask /favicon.ico on every page; it was a 404."""
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg")
    assert 'rel="icon" href="/favicon.ico"' in client.get(reverse("home")).content.decode()


def test_home__shows_counts_and_latest_five_workouts_when_seeded(client):
    call_command("seed_demo", verbosity=0)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    dashboard = response.context["dashboard"]
    assert len(dashboard.latest_workouts) == 5
    assert dashboard.latest_workouts[0] == Workout.objects.first()
    content = response.content.decode()
    assert f"<strong>{Workout.objects.count():,}</strong>" in content
    latest = dashboard.latest_workouts[0]
    assert reverse("admin:tracker_workout_change", args=[latest.pk]) in content
    assert "No workouts yet" not in content


def test_home__uses_a_fixed_number_of_queries(client, workout, django_assert_max_num_queries):
    """Counts, latest workouts with totals and the latest metric: no query per workout."""
    for day in range(1, 10):
        Workout.objects.create(date=workout.date.replace(day=day))
    with django_assert_max_num_queries(7):
        assert client.get(reverse("home")).status_code == 200
