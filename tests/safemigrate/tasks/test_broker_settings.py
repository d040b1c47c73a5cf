"""fitnessdb's Q_CLUSTER: the ORM broker by default, Redis when a Redis URL is set."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def project_settings(monkeypatch, **environ: str) -> dict:
    """fitnessdb/settings.py evaluated afresh with this environment."""
    for name in ("Q_BROKER_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(Path(settings.BASE_DIR) / "fitnessdb" / "settings.py"))


def test_q_cluster__orm_broker_by_default(monkeypatch):
    q_cluster = project_settings(monkeypatch)["Q_CLUSTER"]
    assert q_cluster["orm"] == "default"
    assert "redis" not in q_cluster
    assert q_cluster["sync"] is False


@pytest.mark.parametrize("name", ["Q_BROKER_URL", "REDIS_URL"])
def test_q_cluster__redis_when_a_redis_url_is_set(monkeypatch, name):
    q_cluster = project_settings(monkeypatch, **{name: "redis://127.0.0.1:6379/2"})["Q_CLUSTER"]
    assert q_cluster["redis"] == "redis://127.0.0.1:6379/2"
    assert "orm" not in q_cluster


def test_q_cluster__other_broker_url_is_a_clear_error_without_the_password(monkeypatch):
    with pytest.raises(ImproperlyConfigured) as info:
        project_settings(monkeypatch, Q_BROKER_URL="amqp://user:hunter2@mq/")
    assert str(info.value) == (
        "Q_BROKER_URL (or REDIS_URL) is a 'amqp' URL; the broker must be Redis "
        "(redis://host:6379/0, rediss://… or unix://…). Unset it to use the database as the broker"
    )
