"""entrypoint.sh run as a plain script (no Docker engine here), against real SQLite files and the
real PostgreSQL server: wait for the database, migrate safely, refuse to start on a failed
migration, then exec the command."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail
from tests.safemigrate.helpers import ROOT, manage, prepared_db, project_env, table_dump

pytestmark = pytest.mark.slow

ENTRYPOINT = ROOT / "entrypoint.sh"
SERVED = "import sys; print('served', *sys.argv[1:])"


def entrypoint_env(env: dict[str, str], **extra: str) -> dict[str, str]:
    """The environment of a container: ``python`` on PATH is this virtualenv's; no failure delay."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {"MIGRATE_FAILURE_DELAY": "0", **env, "PATH": path, **extra}


def run_entrypoint(
    *command: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *command],
        env=entrypoint_env(env),
        cwd="/",
        capture_output=True,
        text=True,
        timeout=timeout,
    )


_started: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _reap_started_processes() -> Iterator[None]:
    """A failed assertion must not leave an entrypoint (or its sleep) running behind the test."""
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start_entrypoint(*command: str, env: dict[str, str], **popen: object) -> subprocess.Popen[str]:
    """The entrypoint in its own process group, as PID 1 of a container would be."""
    options: dict[str, object] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen}
    proc = subprocess.Popen(
        ["sh", str(ENTRYPOINT), *command],
        env=entrypoint_env(env),
        cwd="/",
        text=True,
        start_new_session=True,
        **options,  # type: ignore[arg-type]
    )
    _started.append(proc)
    return proc


def migration_rows(db: Path, app: str = "migrapp") -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name FROM django_migrations WHERE app = ?", [app])
        return [r[0] for r in rows]


def backups(folder: Path, reason: str) -> list[Path]:
    return sorted(folder.glob(f"backup-{reason}-*.manifest.json")) if folder.exists() else []


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


# --- SQLite ------------------------------------------------------------------------------------


def test_entrypoint__applies_pending_migration_then_execs_the_command(tmp_path):
    """The shell is replaced by the command (same PID), after a backed-up migration."""
    env = prepared_db(tmp_path)
    db = tmp_path / "db.sqlite3"
    proc = start_entrypoint("python", "-c", "import os; print('served pid', os.getpid())", env=env)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "Applied 1 migration(s) safely" in stdout
    assert f"served pid {proc.pid}" in stdout  # exec: the command is the entrypoint's process
    assert "entrypoint: database ready; starting: python -c" in stderr
    assert migration_rows(db) == ["0001_initial", "0002_item_note"]
    assert len(backups(tmp_path / "backups", "pre_migrate")) == 1


def test_entrypoint__brand_new_database_is_created_and_migrated(tmp_path):
    """A fresh volume: the SQLite folder does not exist yet; no backup of an empty database."""
    env = project_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'data/db/fitness.sqlite3'}")
    result = run_entrypoint("python", "-c", SERVED, "web", env=env)
    assert result.returncode == 0, result.stderr
    assert "served web" in result.stdout
    assert "0002_item_note" in migration_rows(tmp_path / "data/db/fitness.sqlite3")
    assert backups(tmp_path / "backups", "pre_migrate") == []


def test_entrypoint__failed_migration_exits_nonzero_and_never_runs_the_command(tmp_path):
    env = prepared_db(tmp_path)
    db = tmp_path / "db.sqlite3"
    before = table_dump(db)
    marker = tmp_path / "command-ran"
    result = run_entrypoint("python", "-c", f"open({str(marker)!r}, 'w')", env={**env, "MIGRAPP_FAIL": "1"})
    assert result.returncode == 1
    assert not marker.exists()
    assert "Traceback" not in result.stderr
    assert (
        "CommandError: migration migrapp.0002_item_note failed (MIGRAPP_FAIL: data migration "
        "failed half-way); rolled back by the database transaction — nothing was written; the "
        "pre-migration backup backup-pre_migrate-"
    ) in result.stderr
    assert (
        "entrypoint: safemigrate failed (exit 1): the migration was refused or rolled back "
        "(the line above says which, and why). Not starting: python -c"
    ) in result.stderr
    assert "MIGRATE_FAILURE_DELAY" not in result.stderr  # 0 here: exits at once
    assert table_dump(db) == before
    assert migration_rows(db) == ["0001_initial"]


def test_entrypoint__refused_on_a_damaged_database(tmp_path):
    """The integrity pre-check refuses: nothing is migrated and the server does not start."""
    env = prepared_db(tmp_path)
    db = tmp_path / "db.sqlite3"
    with sqlite3.connect(db) as conn:  # a foreign key pointing nowhere
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("INSERT INTO auth_user_groups (user_id, group_id) VALUES (999, 999)")
    result = run_entrypoint("python", "-c", SERVED, env=env)
    assert result.returncode == 1
    assert "served" not in result.stdout
    assert "pre-migration check: database" in result.stderr
    assert "failed its integrity check" in result.stderr
    assert "entrypoint: safemigrate failed (exit 1)" in result.stderr
    assert migration_rows(db) == ["0001_initial"]


def test_entrypoint__two_copies_at_once_apply_each_migration_once(tmp_path):
    """web and worker starting together: the lock lets one migrate, the other finds it done."""
    env = prepared_db(tmp_path)
    db = tmp_path / "db.sqlite3"
    procs = [start_entrypoint("python", "-c", SERVED, name, env=env) for name in ("a", "b")]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert "served a" in outs[0][0]
    assert "served b" in outs[1][0]
    assert migration_rows(db) == ["0001_initial", "0002_item_note"]
    assert len(backups(tmp_path / "backups", "pre_migrate")) == 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT qty FROM migrapp_item ORDER BY id").fetchall() == [
            (0,),
            (10,),
            (20,),
        ]  # the data migration ran exactly once


def test_entrypoint__two_copies_at_once_on_a_fresh_volume_build_it_once(tmp_path):
    env = project_env(tmp_path)
    db = tmp_path / "db.sqlite3"
    procs = [start_entrypoint("python", "-c", SERVED, name, env=env) for name in ("a", "b")]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    with sqlite3.connect(db) as conn:
        total, distinct = conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT app || '.' || name) FROM django_migrations"
        ).fetchone()
    assert total == distinct > 30


def test_entrypoint__sigterm_during_migration_is_forwarded_and_rolls_back(tmp_path):
    """`docker stop` while the shell is PID 1: the migration sees SIGTERM, is undone, and the
    container stops without the failure delay."""
    env = prepared_db(tmp_path)
    db = tmp_path / "db.sqlite3"
    before = table_dump(db)
    marker = tmp_path / "in-migration"
    proc = start_entrypoint(
        "python",
        "-c",
        SERVED,
        env={
            **env,
            "MIGRAPP_SLOW": "30",
            "MIGRAPP_SLOW_MARKER": str(marker),
            "MIGRATE_FAILURE_DELAY": "300",
        },
    )
    assert wait_for(marker.exists, timeout=90)
    proc.send_signal(signal.SIGTERM)  # to the shell only, as Docker does to PID 1
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr
    assert "exiting in 300s" not in stderr
    assert "served" not in stdout
    assert "migration migrapp.0002_item_note failed (interrupted" in stderr
    assert "entrypoint: safemigrate failed (exit 1)" in stderr
    assert table_dump(db) == before


def test_entrypoint__failure_delay_holds_a_restart_loop_back_until_stopped(tmp_path):
    """After a rolled-back migration the container waits before exiting; `docker stop` ends it."""
    env = prepared_db(tmp_path)
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as stderr:
        proc = start_entrypoint(
            "python",
            "-c",
            SERVED,
            env={**env, "MIGRAPP_FAIL": "1", "MIGRATE_FAILURE_DELAY": "300"},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        assert wait_for(lambda: "exiting in 300s" in errors.read_text(), timeout=120)
        time.sleep(0.5)
        assert proc.poll() is None  # still waiting
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 1
    assert time.monotonic() - stopped < 5
    assert (
        "entrypoint: exiting in 300s (MIGRATE_FAILURE_DELAY), so a restart policy does not retry "
        "at once; docker compose stop web worker stops here"
    ) in errors.read_text()


def test_entrypoint__command_receives_sigterm_directly(tmp_path):
    env = prepared_db(tmp_path)
    server = (
        "import signal, sys, time\n"
        "def stop(*args):\n"
        "    print('got SIGTERM', flush=True)\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = start_entrypoint("python", "-c", server, env=env)
    assert proc.stdout is not None
    assert wait_for(lambda: "ready" in proc.stdout.readline(), timeout=120)
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=10)
    assert "got SIGTERM" in stdout
    assert proc.returncode == 0


def test_entrypoint__skip_migrate_runs_the_command_on_a_migrated_database(tmp_path):
    env = project_env(tmp_path)
    assert manage("migrate", "-v0", env=env).returncode == 0
    result = run_entrypoint("python", "-c", SERVED, "worker", env={**env, "SKIP_MIGRATE": "1"})
    assert result.returncode == 0, result.stderr
    assert "served worker" in result.stdout
    assert "SKIP_MIGRATE=1: not migrating" in result.stderr


def test_entrypoint__skip_migrate_waits_then_refuses_an_unmigrated_database(tmp_path):
    env = prepared_db(tmp_path)
    result = run_entrypoint(
        "python",
        "-c",
        SERVED,
        env={**env, "SKIP_MIGRATE": "1", "MIGRATE_WAIT_TIMEOUT": "1"},
    )
    assert result.returncode == 1
    assert "served" not in result.stdout
    assert "CommandError: database 'default' (sqlite " in result.stderr
    assert "still has 1 unapplied migration(s) after 1s (first: migrapp.0002_item_note)" in result.stderr
    assert "entrypoint: the database is not migrated (see above); not starting" in result.stderr
    assert migration_rows(tmp_path / "db.sqlite3") == ["0001_initial"]


def test_entrypoint__unreachable_database_times_out_with_a_clear_message(tmp_path):
    env = project_env(
        tmp_path,
        DATABASE_URL="postgres://postgres@127.0.0.1:9/nowhere",  # port 9: nothing listens
        DB_WAIT_TIMEOUT="2",
    )
    started = time.monotonic()
    result = run_entrypoint("python", "-c", SERVED, env=env)
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert "served" not in result.stdout
    assert "Traceback" not in result.stderr
    assert (
        "CommandError: database 'default' (postgresql 127.0.0.1:9/nowhere) is not reachable "
        "after 2s" in result.stderr
    )
    assert (
        "check DATABASE_URL and that the database server is running, or raise DB_WAIT_TIMEOUT"
        in result.stderr
    )
    assert "entrypoint: the database is not reachable (see above); not starting" in result.stderr
    assert 1.5 < elapsed < 60


def test_entrypoint__without_a_command_prints_usage(tmp_path):
    result = run_entrypoint(env=project_env(tmp_path))
    assert result.returncode == 64
    assert "entrypoint: no command given; usage: entrypoint.sh COMMAND" in result.stderr


# --- PostgreSQL (the real server on 127.0.0.1:5432) ---------------------------------------------

PG_URL = "postgres://postgres@127.0.0.1:5432"


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A throwaway database on the local PostgreSQL server; dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(f"{PG_URL}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        skip_or_fail(f"PostgreSQL is not running on 127.0.0.1:5432 ({exc})")
    try:
        import safemigrate.vendors.postgresql  # noqa: F401
    except ImportError:
        admin.close()
        skip_or_fail("safemigrate has no PostgreSQL adapter (safemigrate/vendors/postgresql.py)")
    name = f"fitnessdb_entrypoint_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def pg_rows(name: str, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(f"{PG_URL}/{name}") as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.services
def test_entrypoint__postgresql_failure_refused_then_two_copies_apply_once(tmp_path, pg_database):
    env = project_env(tmp_path, DATABASE_URL=f"{PG_URL}/{pg_database}")
    for args in (("migrate", "-v0"), ("migrate", "migrapp", "0001", "--no-backup", "-v0")):
        result = manage(*args, env=env)
        assert result.returncode == 0, result.stderr
    import psycopg

    with psycopg.connect(f"{PG_URL}/{pg_database}") as conn:
        conn.execute("INSERT INTO migrapp_item (name, qty) VALUES ('a', 1), ('b', 2), ('c', 3)")

    # A failing 0002 is refused: exit 1, the command never runs, the rows are as before.
    failed = run_entrypoint("python", "-c", SERVED, env={**env, "MIGRAPP_FAIL": "1"})
    assert failed.returncode == 1, failed.stderr
    assert "served" not in failed.stdout
    assert "migration migrapp.0002_item_note failed" in failed.stderr
    assert "entrypoint: safemigrate failed (exit 1)" in failed.stderr
    assert pg_rows(pg_database, "SELECT name, qty FROM migrapp_item ORDER BY id") == [
        ("a", 1),
        ("b", 2),
        ("c", 3),
    ]

    # Two copies at once: 0002 applied exactly once, one pre-migration backup for that run.
    before = set(backups(tmp_path / "backups", "pre_migrate"))
    procs = [start_entrypoint("python", "-c", SERVED, name, env=env) for name in ("a", "b")]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert "served a" in outs[0][0]
    assert "served b" in outs[1][0]
    assert pg_rows(pg_database, "SELECT name FROM django_migrations WHERE app = 'migrapp' ORDER BY id") == [
        ("0001_initial",),
        ("0002_item_note",),
    ]
    assert len(set(backups(tmp_path / "backups", "pre_migrate")) - before) == 1
    assert pg_rows(pg_database, "SELECT qty FROM migrapp_item ORDER BY id") == [(10,), (20,), (30,)]


@pytest.mark.services
def test_entrypoint__postgresql_fresh_database_two_copies_build_it_once(tmp_path, pg_database):
    env = project_env(tmp_path, DATABASE_URL=f"{PG_URL}/{pg_database}")
    procs = [start_entrypoint("python", "-c", SERVED, name, env=env) for name in ("a", "b")]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    [(total, distinct)] = pg_rows(
        pg_database, "SELECT COUNT(*), COUNT(DISTINCT app || '.' || name) FROM django_migrations"
    )
    assert total == distinct > 30
