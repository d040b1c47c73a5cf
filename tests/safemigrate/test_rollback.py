"""Undoing a failed migration on SQLite, with real processes: other writers, kill -9, signals.

The whole guarded plan runs in one transaction: a failure is a ROLLBACK that keeps every write
another process had acknowledged, and a killed process leaves the pre-migration state by SQLite's
own journal, with no restore.
"""

from __future__ import annotations

import json
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.safemigrate.helpers import (
    ROOT,
    Writer,
    files_in,
    manage,
    popen,
    prepared_db,
    project_env,
    table_dump,
    temp_files,
)

pytestmark = pytest.mark.slow

WRITER = r"""
import os, pathlib, sqlite3, sys, time
db, stop, progress = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
conn = sqlite3.connect(db, timeout=120, isolation_level=None)  # autocommit: each INSERT commits
n = 0
while not stop.exists():
    n += 1
    progress.with_suffix(".tmp").write_text(str(n))
    os.replace(progress.with_suffix(".tmp"), progress)  # attempt n starts (MIGRAPP_WAIT_WRITES)
    try:
        conn.execute("INSERT INTO migrapp_item (name, qty) VALUES (?, 0)", (f"w{n}",))
    except sqlite3.DatabaseError as exc:  # e.g. the failed migration's NOT NULL column: not acknowledged
        print("error", n, exc, flush=True)
    else:
        print("ack", n, time.time(), flush=True)  # acknowledged: committed and returned
    time.sleep(0.02)
"""


def one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("CommandError")]
    assert len(lines) == 1, stderr
    return lines[0]


def migration_state(db: Path) -> str:
    """pre (0001, no note column, rows as made) or post (0002 fully applied); fails on a mix."""
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        applied = {r[0] for r in conn.execute("SELECT name FROM django_migrations WHERE app='migrapp'")}
        columns = {r[1] for r in conn.execute("PRAGMA table_info(migrapp_item)")}
        rows = conn.execute("SELECT * FROM migrapp_item ORDER BY id").fetchall()
    if "0002_item_note" not in applied:
        assert "note" not in columns, "a migration half-applied: new column, migration unrecorded"
        assert [r[2] for r in rows] == [0, 1, 2]
        return "pre"
    assert "note" in columns
    assert [(r[2], r[3]) for r in rows] == [(n * 10, f"note for item{n}") for n in range(3)]
    return "post"


def leftovers(tmp_path: Path) -> list[Path]:
    """Temporary or set-aside files a clean ending never leaves behind."""
    hidden = temp_files(tmp_path / "backups")
    return hidden + list(tmp_path.glob("*.corrupt-*")) + list(tmp_path.glob(".*.restoring"))


def test_safemigrate__failed_migration_keeps_every_write_another_process_acknowledged(tmp_path):
    """A writer committing every 20 ms during a failing 3 s migration: every acknowledged row stays."""
    env = prepared_db(tmp_path)
    db = tmp_path / "db.sqlite3"
    with Writer(WRITER, str(db), folder=tmp_path) as writer:
        writer.wait_acked(20)
        started = time.time()
        result = manage("migrate", env={**env, "MIGRAPP_FAIL": "1", "MIGRAPP_SLOW": "3"})
        ended = time.time()
        writer.wait_acked(5)
    out = "\n".join(writer.lines)
    assert result.returncode == 1
    line = one_line_error(result.stderr)
    assert "migration migrapp.0002_item_note failed (MIGRAPP_FAIL: data migration failed half-way); " in line
    assert "rolled back by the database transaction — nothing was written; the pre-migration " in line
    acked = {f"w{p[1]}": float(p[2]) for p in (s.split() for s in out.splitlines()) if p[0] == "ack"}
    assert not [s for s in out.splitlines() if s.startswith("error")]  # writers waited, not failed
    with sqlite3.connect(db) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM migrapp_item")}
    assert set(acked) <= names, sorted(set(acked) - names)
    # The test can fail: rows were acknowledged after the backup was taken (a restore would erase
    # them): the writer waited on the migration's transaction (SQLite has one writer at a time)
    # and was acknowledged once it rolled back, before the waits on acknowledged writes end.
    manifest = json.loads(next((tmp_path / "backups").glob("*.manifest.json")).read_text())
    assert len(acked) + 3 > manifest["row_counts"]["migrapp_item"]
    assert any(started < t < ended for t in acked.values())
    assert leftovers(tmp_path) == []


def _trial_db(template: Path, folder: Path) -> dict[str, str]:
    folder.mkdir()
    with sqlite3.connect(template) as src, sqlite3.connect(folder / "db.sqlite3") as dst:
        src.backup(dst)
    return project_env(folder)


@pytest.fixture
def template(tmp_path) -> Path:
    """A prepared database (migrapp 0002 pending, three items) to copy for each trial."""
    folder = tmp_path / "template"
    folder.mkdir()
    prepared_db(folder)
    return folder / "db.sqlite3"


def _timed_run(env: dict[str, str]) -> float:
    began = time.monotonic()
    result = manage("migrate", env=env)
    assert result.returncode == 0, result.stderr
    return time.monotonic() - began


def test_safemigrate__kill_9_at_random_moments_leaves_pre_or_post_state(tmp_path, template):
    """No restore needed: SQLite's journal leaves the pre-migration or the migrated state, never a mix."""
    slow = {"MIGRAPP_SLOW": "0.5"}
    duration = _timed_run({**_trial_db(template, tmp_path / "timing"), **slow})
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    seen = []
    for trial in range(6):
        env = {**_trial_db(template, tmp_path / f"trial{trial}"), **slow}
        proc = popen("migrate", env=env)
        time.sleep(rng.uniform(0.2, duration * 1.2))
        proc.kill()
        proc.communicate(timeout=60)
        seen.append(migration_state(tmp_path / f"trial{trial}" / "db.sqlite3"))
        # And the next run (the container restarting) migrates normally, with no restore.
        assert manage("migrate", env=env).returncode == 0
        assert migration_state(tmp_path / f"trial{trial}" / "db.sqlite3") == "post"
    print(f"seed {seed}: {seen}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_safemigrate__signal_at_random_moments_ends_truthfully(tmp_path, template, sig):
    """From the pre-check to the end: pre-migration state and one true line, or applied and exit 0."""
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    outcomes = []
    for trial in range(5):
        env = {**_trial_db(template, tmp_path / f"trial{trial}"), "MIGRAPP_SLOW": "0.5"}
        proc = popen("migrate", env={**env, "PYTHONUNBUFFERED": "1"})
        assert proc.stdout is not None
        while "before migrating" not in (line := proc.stdout.readline()):  # the guarded section
            assert line, proc.communicate()[1]
        time.sleep(rng.uniform(0, 1.5))
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
        state = migration_state(tmp_path / f"trial{trial}" / "db.sqlite3")
        outcomes.append((proc.returncode, state))
        if "Applied 1 migration(s) safely" in out:
            # The signal came after the COMMIT (the process may die of it on its way out).
            assert state == "post"
            assert "CommandError" not in err
            assert "Traceback" not in err
        else:
            assert state == "pre"
            line = one_line_error(err)
            assert f"interrupted ({sig.name})" in line
            assert (
                "rolled back by the database transaction — nothing was written" in line
                or "the database is unchanged" in line
            ), line
            # Interrupted before anything changed exits 130, like an interrupted shell command.
            assert proc.returncode == (130 if "the database is unchanged" in line else 1), err
        assert leftovers(tmp_path / f"trial{trial}") == []
    print(f"seed {seed}: {outcomes}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_safemigrate__signal_after_djangos_last_ok_before_the_post_check(tmp_path, sig):
    """The window of the post_migrate handlers: still inside the transaction, so rolled back."""
    env = prepared_db(tmp_path)
    db = tmp_path / "db.sqlite3"
    before = table_dump(db)
    marker = tmp_path / "in-post-migrate"
    proc = popen(
        "migrate", env={**env, "MIGRAPP_POST_MIGRATE_SLOW": "30", "MIGRAPP_SLOW_MARKER": str(marker)}
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert time.monotonic() < deadline
        assert proc.poll() is None
        time.sleep(0.01)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert "Applying migrapp.0002_item_note... OK" in out
    assert proc.returncode == 1, err
    line = one_line_error(err)
    assert line.startswith(
        f"CommandError: a post_migrate handler failed (interrupted ({sig.name})); rolled back "
        "by the database transaction — nothing was written; the pre-migration backup backup-pre_migrate-"
    ), line
    assert table_dump(db) == before
    assert migration_state(db) == "pre"
    status = (
        sqlite3.connect(db)
        .execute("SELECT status, rollback FROM safemigrate_migrationrun ORDER BY id DESC")
        .fetchone()
    )
    assert status == ("rolled_back", "transaction")
    assert leftovers(tmp_path) == []


def test_safemigrate__statement_refused_in_a_transaction_takes_the_restore_path(tmp_path):
    """VACUUM, seen in the plan or only when it runs: the restore path, said in one line."""
    env = prepared_db(tmp_path)
    plan = manage("safemigrate", "--plan", env={**env, "MIGRAPP_SQL": "VACUUM"})
    assert "Rollback: restore from backup." in plan.stdout
    assert "(SQL that cannot run in a transaction: undone from the backup)" in plan.stdout
    result = manage("migrate", env={**env, "MIGRAPP_PYSQL": "VACUUM"})
    assert result.returncode == 0, result.stderr
    assert (
        "Migration migrapp.0002_item_note runs a statement that cannot be inside a transaction (cannot "
        "VACUUM from within a transaction); rolled back, nothing was written; migrating again with "
        "restore from the backup as undo"
    ) in result.stdout
    db = tmp_path / "db.sqlite3"
    assert migration_state(db) == "post"
    status = (
        sqlite3.connect(db)
        .execute("SELECT status, rollback FROM safemigrate_migrationrun ORDER BY id DESC")
        .fetchone()
    )
    assert status == ("applied", "restore")


def test_restore__by_hand_command_works_with_no_terminal(tmp_path):
    """The command a failed rollback prints runs as printed, stdin closed (a container, a script)."""
    env = prepared_db(tmp_path)
    db = tmp_path / "db.sqlite3"
    assert manage("backup", "--reason", "pre_migrate", env=env).returncode == 0
    before = table_dump(db)
    sqlite3.connect(db).execute("DELETE FROM migrapp_item").connection.commit()
    name = next((tmp_path / "backups").glob("backup-pre_migrate-*.zst")).name
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "restore", name, "--no-safety-backup", "--noinput"],
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert table_dump(db) == before


def test_backup__sigterm_leaves_no_plaintext_temporary_file(tmp_path):
    """docker stop during a backup: one line, exit 130, no .snapshot-* or .partial left behind."""
    env = prepared_db(tmp_path)
    db = tmp_path / "db.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 400000) "
            "INSERT INTO migrapp_item (name, qty) SELECT hex(randomblob(40)), i FROM n"
        )
    folder = tmp_path / "backups"
    proc = popen("backup", env=env)
    # The plaintext snapshot exists (the .partial backup too): the signal lands while they are
    # written, however slow the machine.
    deadline = time.monotonic() + 120
    while not any(folder.glob(".work/.snapshot-*")):
        assert time.monotonic() < deadline
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.002)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert one_line_error(err) == "CommandError: interrupted; nothing was left half-done"
    # No file at all; the private .work folder itself stays (0700, it holds the made-here journal).
    assert files_in(folder) == []


def test_safemigrate__disk_full_mid_migration_is_rolled_back_and_loses_nothing(tmp_path):
    """The file-size limit lets the backup through but not the migration's rebuilt table."""
    import resource

    env = prepared_db(tmp_path)
    db = tmp_path / "db.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 20000) "
            "INSERT INTO migrapp_item (name, qty) SELECT hex(randomblob(40)), i FROM n"
        )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = table_dump(db)
    limit = int(db.stat().st_size * 1.3)

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limited,  # noqa: PLW1509
    )
    assert result.returncode == 1
    line = one_line_error(result.stderr)
    assert "migration migrapp.0002_item_note failed (" in line
    assert "rolled back by the database transaction — nothing was written" in line
    assert table_dump(db) == before
    assert leftovers(tmp_path) == []


def test_safemigrate__restore_path_keeps_and_dumps_rows_another_process_wrote(tmp_path):
    """Restore path (a plan with VACUUM), a writer meanwhile: the failed file is kept, the rows
    written after the backup are in a loaddata fixture, every acknowledged row is live or in it,
    and the fixture loads once the migration is fixed."""
    env = prepared_db(tmp_path)
    db = tmp_path / "db.sqlite3"
    with Writer(WRITER, str(db), folder=tmp_path) as writer:
        writer.wait_acked(20)
        # Held after the backup, before its first change, until 20 more writes started.
        run_env = {**env, "MIGRAPP_FAIL": "1", "MIGRAPP_SQL": "VACUUM", **writer.hold_migration(20)}
        result = manage("migrate", env=run_env)
        writer.wait_acked(5)
    assert result.returncode == 1
    line = one_line_error(result.stderr)
    found = re.search(
        r"; the database was restored from backup-pre_migrate-\S+ \(taken before the migration\); rows "
        r"differ from the backup, written after it by other connections or by the failed migration "
        r"itself \(migrapp_item: \d+ new, \d+ changed[^;]*\), so the failed database is kept as (\S+) "
        r"and its \d+ new and changed rows of the project's models are in (\S+\.json) \(review, then "
        r"load with manage\.py loaddata \2; after migrating if the fixed migration changes those "
        r"models\)\. Drop \1 when done\. Fix the migration and run safemigrate again$",
        line,
    )
    assert found, line
    kept, dump = Path(found[1]), Path(found[2])
    assert kept.is_file()
    assert dump.parent == tmp_path / "backups"
    acked, during = writer.acked(), writer.during_migration(20)
    rows = json.loads(dump.read_text())
    dumped = {r["fields"]["name"] for r in rows if r["model"] == "migrapp.item"}
    with sqlite3.connect(db) as conn:
        live = {r[0] for r in conn.execute("SELECT name FROM migrapp_item")}
    assert acked <= live | dumped, sorted(acked - live - dumped)
    assert acked & (dumped - live), "no write slipped in between the backup and the restore"
    assert len(during & acked) >= 19, sorted(during - acked)
    assert during & acked <= dumped, sorted(during & acked - dumped)
    assert manage("migrate", "-v0", env=env).returncode == 0  # the fixed migration
    loaded = manage("loaddata", str(dump), env=env)
    assert loaded.returncode == 0, loaded.stderr
    with sqlite3.connect(db) as conn:
        after = {r[0] for r in conn.execute("SELECT name FROM migrapp_item")}
    assert dumped <= after
