"""The fence middleware: writes get 503 + Retry-After while another process holds the lock."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.db import connection
from django.urls import reverse

from tests.safemigrate.helpers import ROOT

pytestmark = pytest.mark.django_db

HOLD = (
    "import sys, time\n"
    "from safemigrate.lock import migration_lock\n"
    "with migration_lock(alias='default'):\n"
    "    print('locked', flush=True)\n"
    "    sys.stdin.readline()\n"
)


@pytest.fixture
def lock_held_elsewhere(settings):
    """Another process (a migration, say) holding the lock on the test database."""
    import os

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
        "PYTHONPATH": str(ROOT),
    }
    holder = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "shell", "--no-imports", "-c", HOLD],
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert "locked" in holder.stdout.readline()
    yield
    holder.communicate("\n", timeout=60)


def test_fence__writes_wait_reads_go_on_while_the_lock_is_held(admin_client, lock_held_elsewhere, settings):
    settings.SAFEMIGRATE_FENCE_RETRY_AFTER = 7
    url = reverse("admin:safemigrate_backup_changelist")
    response = admin_client.post(reverse("admin:logout"))
    assert response.status_code == 503
    assert response["Retry-After"] == "7"
    assert admin_client.get(url).status_code == 200


def test_fence__writes_pass_when_the_lock_is_free(admin_client):
    assert admin_client.post(reverse("admin:logout")).status_code == 200
