"""/healthz, the project's own probe, over HTTP: a database behind the code is not healthy."""

from __future__ import annotations

import pytest
from django.db import connection

from fitnessdb import views


@pytest.fixture(autouse=True)
def fresh_answer():
    """Each test asks afresh: no answer cached by an earlier one."""
    views._healthz = None
    yield
    views._healthz = None


@pytest.mark.django_db
def test_healthz__answers_ok_when_the_database_answers_and_is_migrated(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_healthz__unapplied_migrations_are_503_with_the_reason(client):
    """A backup older than the code restored: its tables lack the newest migration's changes, so
    the pages fail; the probe says so instead of ok (the entrypoint's migrate fixes it)."""
    with connection.cursor() as cursor:  # the database as a backup taken before 0001 ran
        cursor.execute("DELETE FROM django_migrations WHERE app = 'tracker' AND name = '0001_initial'")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "error",
        "reason": "1 unapplied migration(s): tracker.0001_initial; run manage.py safemigrate",
    }
    # One answer stands a few seconds: the next probe costs no migration plan.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO django_migrations (app, name, applied) VALUES ('tracker', '0001_initial', %s)",
            ["2026-01-01"],
        )
    assert client.get("/healthz").status_code == 503
    views._healthz = None  # the few seconds passed
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db
def test_healthz__many_unapplied_migrations_are_named_briefly(client):
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM django_migrations WHERE app IN ('auth', 'contenttypes')")
    response = client.get("/healthz")
    assert response.status_code == 503
    reason = response.json()["reason"]
    assert reason == (
        "14 unapplied migration(s): contenttypes.0001_initial, contenttypes.0002_remove_content_type_name, "
        "auth.0001_initial and 11 more; run manage.py safemigrate"
    )
