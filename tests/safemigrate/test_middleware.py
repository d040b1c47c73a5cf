"""The fence middleware: writes get 503 + Retry-After only while another process migrates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from django.db import connection
from django.urls import reverse

from tests.safemigrate.helpers import ROOT

pytestmark = pytest.mark.django_db

HOLD = (
    "import sys, contextlib\n"
    "from safemigrate.lock import migration_lock, migration_running\n"
    "with migration_lock(alias='default'), (\n"
    "    migration_running(alias='default') if sys.argv[-1] == 'migrating' else contextlib.nullcontext()\n"
    "):\n"
    "    print('locked', flush=True)\n"
    "    sys.stdin.readline()\n"
)


@pytest.fixture
def hold_lock() -> Iterator[Callable[[str], subprocess.Popen[str]]]:
    """Another process holding the lock on the test database, as a backup or as a migration."""
    holders: list[subprocess.Popen[str]] = []
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
        "PYTHONPATH": str(ROOT),
    }

    def start(purpose: str) -> subprocess.Popen[str]:
        code = HOLD.replace("sys.argv[-1]", repr(purpose))
        holder = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "shell", "--no-imports", "-c", code],
            env=env,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        holders.append(holder)
        assert holder.stdout is not None
        assert "locked" in holder.stdout.readline()
        return holder

    yield start
    for holder in holders:
        if holder.poll() is None:
            holder.communicate("\n", timeout=60)


def test_fence__writes_wait_reads_go_on_while_a_migration_runs(admin_client, hold_lock, settings):
    settings.SAFEMIGRATE_FENCE_RETRY_AFTER = 7
    hold_lock("migrating")
    url = reverse("admin:safemigrate_backup_changelist")
    response = admin_client.post(reverse("admin:logout"))
    assert response.status_code == 503
    assert response["Retry-After"] == "7"
    assert admin_client.get(url).status_code == 200


def test_fence__a_backup_holding_the_lock_does_not_fence(admin_client, hold_lock):
    """A plain backup, verify or rotation takes the lock too, but writes go on meanwhile."""
    hold_lock("backup")
    assert admin_client.post(reverse("admin:logout")).status_code == 200


def test_fence__a_killed_migration_fences_nothing(admin_client, hold_lock):
    """kill -9 of the migrating process: its marker dies with it, writes pass at once."""
    holder = hold_lock("migrating")
    assert admin_client.post(reverse("admin:logout")).status_code == 503
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    assert admin_client.post(reverse("admin:logout")).status_code == 200


def test_fence__writes_pass_when_the_lock_is_free(admin_client):
    assert admin_client.post(reverse("admin:logout")).status_code == 200
