"""Fixtures for the django-q2 task tests: backups to work on, a lock held by another process."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from safemigrate.backup import BackupResult, create_backup

HOLD_LOCK = """
import sys
import django
django.setup()
from safemigrate.lock import migration_lock
with migration_lock(alias="default", timeout=30):
    print("locked", flush=True)
    sys.stdin.read()
"""


def project_env(*, database: Path | str, backup_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a second process on the same database file and backup folder."""
    if not hasattr(settings, "BASE_DIR"):
        pytest.skip("a second process needs the fitnessdb project's settings (not the minimal ones)")
    env = {k: v for k, v in os.environ.items() if k not in ("Q_BROKER_URL", "REDIS_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="fitnessdb.settings",
        DATABASE_URL=f"sqlite:///{database}",
        SECRET_KEY=settings.SECRET_KEY,
        DEBUG="1",
        SAFEMIGRATE_BACKUP_DIR=str(backup_dir),
        PYTHONPATH=str(settings.BASE_DIR),
        **extra,
    )
    return env


@pytest.fixture
def make_backups(backup_dir) -> Callable[[int], list[BackupResult]]:
    """Make ``n`` verified backups of the test database, oldest first."""

    def make(n: int, reason: str = "manual") -> list[BackupResult]:
        return [create_backup(alias="default", reason=reason) for _ in range(n)]

    return make


@pytest.fixture
def lock_held_elsewhere(backup_dir) -> Callable[[], contextlib.AbstractContextManager[None]]:
    """A context manager: another process holds the migration lock on the test database."""

    @contextlib.contextmanager
    def hold() -> Iterator[None]:
        env = project_env(database=connection.settings_dict["NAME"], backup_dir=backup_dir)
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "locked"
            yield
        finally:
            assert holder.stdin is not None
            holder.stdin.close()
            try:
                holder.wait(timeout=10)
            finally:
                if holder.poll() is None:
                    holder.kill()
                    holder.wait()

    return hold
