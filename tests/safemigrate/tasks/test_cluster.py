"""A real django-q2 cluster (``manage.py qcluster``) runs safemigrate's tasks.

The test process enqueues with django-q2's own ``async_task`` into the cluster's broker (the ORM
broker on the cluster's SQLite file, or Redis), then waits, bounded, for the worker to rotate the
files and record the results; the cluster is stopped with SIGTERM and its process group killed
in any case.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from django_q.conf import Conf
from django_q.models import OrmQ, Task
from django_q.tasks import async_task

from safemigrate.manifest import list_manifests
from tests.conftest import skip_or_fail
from tests.safemigrate.tasks.conftest import project_env

CLUSTER_DB = "qcluster"
"""Alias, in this test process, of the cluster's database file."""
WAIT = 120.0
"""Seconds a cluster gets to finish its tasks: a bound for a failure, never a pace (a loaded CI
machine starts its workers slowly)."""


MAKE_BACKUPS = """
import sys
import django
django.setup()
from safemigrate.backup import create_backup
for _ in range(int(sys.argv[1])):
    print(create_backup(alias="default", reason="manual").manifest.name)
"""


@pytest.fixture
def cluster_project(tmp_path: Path, django_db_blocker) -> Iterator[Callable[..., dict[str, str]]]:
    """A migrated SQLite file for a cluster (tmp/db.sqlite3), reachable here as CLUSTER_DB.

    Yields a function giving the cluster's environment (extra variables as keywords). The test
    database is not used: these tests touch only the cluster's file (and tmp/backups).
    """
    database = tmp_path / "db.sqlite3"
    backup_dir = tmp_path / "backups"

    def environment(**extra: str) -> dict[str, str]:
        return project_env(
            database=database, backup_dir=backup_dir, SAFEMIGRATE_KEEP="1", Q_WORKERS="1", **extra
        )

    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=settings.BASE_DIR,
        env=environment(),
        check=True,
        timeout=120,
    )
    configured = connections.configure_settings(
        {
            "default": connections.settings["default"],
            CLUSTER_DB: {"ENGINE": "django.db.backends.sqlite3", "NAME": str(database)},
        }
    )
    connections.settings[CLUSTER_DB] = configured[CLUSTER_DB]
    try:
        with django_db_blocker.unblock():
            yield environment
    finally:
        connections[CLUSTER_DB].close()
        del connections[CLUSTER_DB]
        del connections.settings[CLUSTER_DB]


@contextlib.contextmanager
def qcluster(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``manage.py qcluster`` in its own process group: SIGTERM, then the group is killed."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the workers too, whatever happened
        proc.wait(timeout=10)


def make_backups(env: dict[str, str], n: int) -> list[str]:
    """``n`` backups of the cluster's database (oldest first), made by another process."""
    done = subprocess.run(
        [sys.executable, "-c", MAKE_BACKUPS, str(n)],
        cwd=settings.BASE_DIR,
        env=env,
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    )
    return done.stdout.split()


def wait_for_tasks(ids: list[str], proc: subprocess.Popen[bytes], log: Path) -> dict[str, Task]:
    """The django_q Task rows of ``ids`` once the cluster has recorded them all (bounded)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        done = {t.id: t for t in Task.objects.using(CLUSTER_DB).filter(id__in=ids)}
        if len(done) == len(ids):
            return done
        assert proc.poll() is None, f"qcluster exited {proc.returncode}:\n{log.read_text()}"
        time.sleep(0.2)
    pytest.fail(f"the cluster did not finish {ids} in {WAIT:.0f}s:\n{log.read_text()}")


@pytest.mark.slow
def test_qcluster_orm_broker__runs_a_queued_rotation(cluster_project, tmp_path, monkeypatch):
    """Queued with no worker running, the work waits in the database; a started worker does it."""
    backup_dir = tmp_path / "backups"
    made = make_backups(cluster_project(), 3)
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "ORM", CLUSTER_DB)
    rotation = async_task("safemigrate.tasks.rotate_backups", "default", group="safemigrate")
    failing = async_task("safemigrate.tasks.rotate_backups", "replica", group="safemigrate")
    assert OrmQ.objects.using(CLUSTER_DB).count() == 2
    assert sorted(m.name for m in list_manifests(backup_dir)) == sorted(made)

    log = tmp_path / "qcluster.log"
    with qcluster(cluster_project(), log) as proc:
        tasks = wait_for_tasks([rotation, failing], proc, log)

    assert tasks[rotation].success is True, tasks[rotation].result
    assert tasks[rotation].result == {
        "alias": "default",
        "deleted": [made[1], made[0]],
        "kept": 1,
    }
    assert [m.name for m in list_manifests(backup_dir)] == [made[2]]
    assert tasks[failing].success is False
    assert str(tasks[failing].result).startswith("The connection 'replica' doesn't exist.")
    assert "safemigrate task rotate_backups('replica') failed: The connection 'replica'" in (log.read_text())
    assert OrmQ.objects.using(CLUSTER_DB).count() == 0


@pytest.mark.slow
@pytest.mark.services
def test_qcluster_redis_broker__runs_a_queued_rotation(cluster_project, tmp_path, monkeypatch):
    import redis

    url = f"redis://127.0.0.1:6379/{1 + os.getpid() % 15}"
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis is not reachable on 127.0.0.1:6379 ({exc})")
    backup_dir = tmp_path / "backups"
    made = make_backups(cluster_project(), 2)
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", url)
    queue = f"django_q:{Conf.CLUSTER_NAME}:q"
    client.delete(queue)
    log = tmp_path / "qcluster.log"
    try:
        rotation = async_task("safemigrate.tasks.rotate_backups", "default", group="safemigrate")
        assert client.llen(queue) == 1
        with qcluster(cluster_project(Q_BROKER_URL=url), log) as proc:
            tasks = wait_for_tasks([rotation], proc, log)
        assert not OrmQ.objects.using(CLUSTER_DB).exists()  # it went through Redis
        assert tasks[rotation].success is True, tasks[rotation].result
        assert tasks[rotation].result == {"alias": "default", "deleted": [made[0]], "kept": 1}
        assert [m.name for m in list_manifests(backup_dir)] == [made[1]]
        assert client.llen(queue) == 0
    finally:
        for key in client.scan_iter(f"django_q:{Conf.PREFIX}:*"):
            client.delete(key)
        client.close()
