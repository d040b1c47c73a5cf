"""Faults in real subprocesses: failing and interrupted migrations, concurrency, full disk, corruption.

Each must end with one clear line, a non-zero exit where something was refused, and nothing lost.
"""

from __future__ import annotations

import json
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.safemigrate.helpers import (
    ROOT,
    files_in,
    hold_lock,
    manage,
    popen,
    prepared_db,
    project_env,
    schema,
    table_dump,
    temp_files,
)

pytestmark = pytest.mark.slow


def backups_in(tmp_path: Path, reason: str = "") -> list[Path]:
    folder = tmp_path / "backups"
    return sorted(folder.glob(f"backup-{reason}*.manifest.json")) if folder.exists() else []


def assert_one_line_error(stderr: str, *fragments: str) -> None:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("CommandError")]
    assert len(lines) == 1, stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def fill(db: Path, rows: int) -> None:
    """Bulk rows of incompressible-ish text, to make a database of a useful size."""
    with sqlite3.connect(db) as conn:
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < ?) "
            "INSERT INTO migrapp_item (name, qty) SELECT hex(randomblob(40)), i FROM n",
            [rows],
        )


def test_safemigrate__failing_migration_is_rolled_back_exactly(tmp_path):
    """A non-atomic migration raising half-way: rolled back, schema and every row as before, exit 1."""
    env = prepared_db(tmp_path)
    db = tmp_path / "db.sqlite3"
    before, before_schema = table_dump(db), schema(db)
    result = manage("migrate", env={**env, "MIGRAPP_FAIL": "1"})
    assert result.returncode == 1
    assert_one_line_error(
        result.stderr,
        "migration migrapp.0002_item_note failed (MIGRAPP_FAIL: data migration failed half-way); "
        "rolled back by the database transaction — nothing was written; the pre-migration backup "
        "backup-pre_migrate-",
    )
    assert table_dump(db) == before
    assert schema(db) == before_schema
    assert not list(db.parent.glob("*.restoring"))
    assert not temp_files(tmp_path / "backups")
    runs = (
        sqlite3.connect(db).execute("SELECT status, rollback, error FROM safemigrate_migrationrun").fetchall()
    )
    assert runs[-1][:2] == ("rolled_back", "transaction")
    assert "MIGRAPP_FAIL" in runs[-1][2]
    # And the fixed migration then applies normally.
    assert manage("migrate", env=env).returncode == 0


def test_safemigrate__two_concurrent_runs_apply_once(tmp_path):
    env = prepared_db(tmp_path)
    first, second = popen("migrate", env=env), popen("migrate", env=env)
    outs = [p.communicate(timeout=120) for p in (first, second)]
    assert first.returncode == 0, outs
    assert second.returncode == 0, outs
    rows = (
        sqlite3.connect(tmp_path / "db.sqlite3")
        .execute("SELECT COUNT(*) FROM django_migrations WHERE app='migrapp' AND name='0002_item_note'")
        .fetchone()[0]
    )
    assert rows == 1
    assert len(backups_in(tmp_path, "pre_migrate")) == 1


def test_safemigrate__lock_held_times_out_naming_the_holder(tmp_path):
    env = prepared_db(tmp_path)
    holder = hold_lock(env)
    try:
        result = manage("migrate", env={**env, "SAFEMIGRATE_LOCK_TIMEOUT": "1"})
        assert result.returncode == 1
        assert_one_line_error(
            result.stderr, "holds the lock", f"pid {holder.pid}", "SAFEMIGRATE_LOCK_TIMEOUT"
        )
    finally:
        holder.kill()
        holder.wait()
    # The kernel dropped the killed holder's lock: the next run goes through.
    assert manage("migrate", env=env).returncode == 0


def test_safemigrate__ctrl_c_before_migrating_is_one_line(tmp_path):
    """Interrupted while waiting for the lock: one line, exit 130, nothing changed or backed up."""
    env = prepared_db(tmp_path)
    db = tmp_path / "db.sqlite3"
    before = table_dump(db)
    holder = hold_lock(env)
    try:
        proc = popen(
            "migrate", env={**env, "SAFEMIGRATE_LOG_LEVEL": "INFO", "SAFEMIGRATE_LOCK_TIMEOUT": "120"}
        )
        assert proc.stderr is not None
        seen = []
        while not seen or "waiting up to" not in seen[-1]:
            line = proc.stderr.readline()
            assert line, "".join(seen)
            seen.append(line)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 130, stderr
    assert_one_line_error(stderr, "interrupted (SIGINT) before migrating: the database is unchanged")
    assert table_dump(db) == before
    assert backups_in(tmp_path, "pre_migrate") == []


def test_manage__ctrl_c_no_command_handles_is_one_line(tmp_path):
    """A KeyboardInterrupt that reaches manage.py (Django starting, a command of Django's) is one line."""
    marker = tmp_path / "started"
    proc = popen(
        "shell",
        "-c",
        f"import pathlib, time; pathlib.Path({str(marker)!r}).touch(); time.sleep(60)",
        env=project_env(tmp_path),
    )
    assert _wait_for(marker.exists, timeout=60)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert stderr.strip() == "Interrupted."


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_safemigrate__disk_full_refuses_migration_and_leaves_no_partial_file(tmp_path):
    env = prepared_db(tmp_path)
    db = tmp_path / "db.sqlite3"
    fill(db, 20_000)
    before = table_dump(db)
    (tmp_path / "backups").mkdir()
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_file_size(db.stat().st_size // 2),  # noqa: PLW1509
    )
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "backup failed", "nothing was changed", "SAFEMIGRATE_BACKUP_DIR")
    # Nothing but the run journal (the refused run is logged) and its lock.
    assert [p.name for p in files_in(tmp_path / "backups")] == [".manifests.lock", ".safemigrate-runs.jsonl"]
    assert table_dump(db) == before  # not migrated, not changed


def test_safemigrate__corrupt_database_refused_then_restored(tmp_path):
    env = prepared_db(tmp_path)
    db = tmp_path / "db.sqlite3"
    fill(db, 5_000)
    assert manage("backup", env=env).returncode == 0
    good = table_dump(db)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='migrapp_item'").fetchone()[0]
    with db.open("r+b") as f:  # scribble over the table's root page
        f.seek((root - 1) * 4096 + 8)
        f.write(b"\xff" * 512)
    result = manage("migrate", env=env)
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "pre-migration check", "failed its integrity check", "restore")
    restored = manage("restore", "--latest", "--noinput", "--no-safety-backup", env=env)
    assert restored.returncode == 0, restored.stderr
    assert table_dump(db) == good


def test_restore__unreadable_file_is_replaced_and_kept_aside(tmp_path):
    """A live file SQLite cannot open at all: restored from the folder alone, old file kept."""
    env = prepared_db(tmp_path)
    db = tmp_path / "db.sqlite3"
    assert manage("backup", env=env).returncode == 0
    good = table_dump(db)
    listed = json.loads(manage("backups", "--format", "json", env=env).stdout)
    db.write_bytes(b"this is not a database" * 1000)
    # Listing still works from the manifests although the catalogue's database is gone.
    assert [b["name"] for b in json.loads(manage("backups", "--format", "json", env=env).stdout)] == [
        b["name"] for b in listed
    ]
    result = manage("restore", listed[0]["name"], "--noinput", "--no-safety-backup", env=env)
    assert result.returncode == 0, result.stderr
    assert table_dump(db) == good
    assert list(tmp_path.glob("db.sqlite3.corrupt-*"))
    assert (
        not Path(f"{db}-wal").exists()
        or sqlite3.connect(db).execute("PRAGMA quick_check").fetchone()[0] == "ok"
    )


def test_restore__safety_backup_failure_on_damaged_database_says_what_to_do(tmp_path):
    env = prepared_db(tmp_path)
    db = tmp_path / "db.sqlite3"
    assert manage("backup", env=env).returncode == 0
    db.write_bytes(b"garbage" * 1000)
    result = manage("restore", "--latest", "--noinput", env=env)
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "safety backup", "--no-safety-backup")
    assert db.read_bytes() == b"garbage" * 1000  # untouched


def _wait_for(predicate, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return False


def test_backup__ctrl_c_leaves_no_partial_file(tmp_path):
    env = prepared_db(tmp_path)
    db = tmp_path / "db.sqlite3"
    fill(db, 400_000)
    folder = tmp_path / "backups"
    proc = popen("backup", env=env)
    assert _wait_for(lambda: folder.exists() and any(folder.glob(".*partial")))
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "Traceback" not in stderr
    assert files_in(folder) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_safemigrate__interrupt_during_migration_rolls_back(tmp_path, sig):
    env = prepared_db(tmp_path)
    db = tmp_path / "db.sqlite3"
    before = table_dump(db)
    marker = tmp_path / "in-migration"
    proc = popen("migrate", env={**env, "MIGRAPP_SLOW": "20", "MIGRAPP_SLOW_MARKER": str(marker)})
    assert _wait_for(marker.exists, timeout=60)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1, stderr
    assert_one_line_error(stderr, "migration migrapp.0002_item_note failed (interrupted")
    assert table_dump(db) == before


def test_safemigrate__brand_new_database_needs_no_backup(tmp_path):
    from tests.safemigrate.helpers import project_env

    env = project_env(tmp_path)
    result = manage("migrate", env=env)
    assert result.returncode == 0, result.stderr
    assert backups_in(tmp_path) == []
    again = manage("migrate", env=env)  # nothing to apply: no backup either
    assert again.returncode == 0
    assert "No migrations to apply" in again.stdout
    assert backups_in(tmp_path) == []


def test_restore__process_holding_the_database_open_sees_the_restored_data(tmp_path):
    """Restored in place through SQLite: a web/worker connection open across it is not orphaned."""
    env = prepared_db(tmp_path)
    db = tmp_path / "db.sqlite3"
    assert manage("backup", env=env).returncode == 0
    held = sqlite3.connect(db)  # stands in for a running web process
    held.execute("INSERT INTO migrapp_item (name, qty) VALUES ('added later', 1)")
    held.commit()
    assert held.execute("SELECT COUNT(*) FROM migrapp_item").fetchone()[0] == 4
    result = manage("restore", "--latest", "--noinput", env=env)
    assert result.returncode == 0, result.stderr
    assert held.execute("SELECT COUNT(*) FROM migrapp_item").fetchone()[0] == 3
    held.execute("INSERT INTO migrapp_item (name, qty) VALUES ('after restore', 1)")
    held.commit()
    fresh = sqlite3.connect(db)
    assert fresh.execute("SELECT COUNT(*) FROM migrapp_item").fetchone()[0] == 4
    held.close()
    fresh.close()


def test_safemigrate__failing_migration_on_a_new_database_is_one_clear_line(tmp_path):
    from tests.safemigrate.helpers import project_env

    result = manage("migrate", env=project_env(tmp_path, MIGRAPP_FAIL="1"))
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "migration migrapp.0002_item_note failed on a new, empty database")
    assert backups_in(tmp_path) == []
