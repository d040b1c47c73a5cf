"""Undoing a failed migration on the real servers, with real processes writing meanwhile.

PostgreSQL with an all-atomic plan: one transaction, a ROLLBACK keeps every other write.
MariaDB, and PostgreSQL with a non-atomic plan: the restore path, which keeps the failed database
(with whatever other connections wrote after the backup) and names it.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.safemigrate.helpers import Writer, popen
from tests.safemigrate.vendors.servers import LiveDB

pytestmark = pytest.mark.slow

WRITER = r"""
import os, pathlib, sys, time
engine, port, user, name, stop, progress = sys.argv[1:7]
stop, progress = pathlib.Path(stop), pathlib.Path(progress)

def connect():
    if engine == "postgresql":
        import psycopg
        return psycopg.connect(host="127.0.0.1", port=int(port), user=user, dbname=name, autocommit=True,
                               connect_timeout=3)
    import MySQLdb
    conn = MySQLdb.connect(host="127.0.0.1", port=int(port), user=user, database=name, connect_timeout=3)
    conn.autocommit(True)
    return conn

conn, n = None, 0
while not stop.exists():
    n += 1
    progress.with_suffix(".tmp").write_text(str(n))
    os.replace(progress.with_suffix(".tmp"), progress)  # attempt n starts (MIGRAPP_WAIT_WRITES)
    try:
        conn = conn or connect()
        conn.cursor().execute("INSERT INTO migrapp_item (name, qty) VALUES (%s, 0)", (f"w{n}",))
    except Exception as exc:  # the swap ends this connection: not acknowledged, reconnect
        print("error", n, type(exc).__name__, flush=True)
        conn = None
    else:
        print("ack", n, flush=True)
    time.sleep(0.02)
"""


def at_0001(db: LiveDB) -> None:
    db.ok("migrate", "migrapp", "0001", "--no-backup", "-v0")
    db.server.query("DELETE FROM migrapp_item", database=db.name)
    for n in range(3):
        db.server.query(
            "INSERT INTO migrapp_item (name, qty) VALUES (%s, %s)", (f"item{n}", n), database=db.name
        )


def names(db: LiveDB, database: str) -> set[str]:
    return {r[0] for r in db.server.query("SELECT name FROM migrapp_item", database=database)}


def one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("CommandError")]
    assert len(lines) == 1, stderr
    return lines[0]


def run_with_writer(db: LiveDB, tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, set, set]:
    """Migrate (failing) with a writer beside it: acknowledged writes before the migration, 20
    while it runs (it waits for them, after the backup), and after it, however slow the machine.

    Returns the result, the acknowledged rows and those of the writes made during the migration.
    """
    s = db.server
    with Writer(WRITER, s.engine, str(s.port), s.user, db.name, folder=tmp_path) as writer:
        writer.wait_acked(20)
        result = db.run("migrate", MIGRAPP_FAIL="1", **writer.hold_migration(DURING), **env)
        writer.wait_acked(5)
    return result, writer.acked(), writer.during_migration(DURING)


DURING = 20


def test_safemigrate__atomic_plan_failure_keeps_every_acknowledged_write(db, tmp_path):
    """A writer every 20 ms during a failing atomic migration: nothing it was told is lost."""
    at_0001(db)
    atomic = db.server.engine == "postgresql"
    result, acked, during = run_with_writer(db, tmp_path, MIGRAPP_ATOMIC="1")
    assert result.returncode == 1
    line = one_line_error(result.stderr)
    assert "migration migrapp.0002_item_note failed (MIGRAPP_FAIL: data migration failed half-way); " in line
    # Writes acknowledged inside the migration's window, after its backup: a restore would lose them.
    assert len(during & acked) >= DURING - 1, sorted(during - acked)
    live = names(db, db.name)
    if atomic:
        assert "rolled back by the database transaction — nothing was written" in line
        assert acked <= live, sorted(acked - live)
        assert db.leftovers() == []
    else:  # MariaDB: DDL is not transactional, the restore path keeps the failed database and dumps
        kept = re.search(r"the failed database is kept as (\S+) and its", line)
        assert kept, line
        dumped = dumped_names(line)
        assert acked <= live | dumped, sorted(acked - live - dumped)
        assert during & acked <= dumped, sorted(during & acked - dumped)
        assert acked - live, "no write slipped in between the backup and the swap: the test proves nothing"
        db.server.drop(kept[1])
    assert "note" not in db.server.columns(db.name, "migrapp_item")


def dumped_names(line: str) -> set[str]:
    """The item names in the changes dump the message names (a ``loaddata`` fixture)."""
    found = re.search(
        r"rows of the project's models are in (\S+) \(review, then load with manage\.py loaddata \1;", line
    )
    assert found, line
    rows = json.loads(Path(found[1]).read_text())
    assert oct(Path(found[1]).stat().st_mode & 0o777) == "0o600"
    return {r["fields"]["name"] for r in rows if r["model"] == "migrapp.item"}


def test_safemigrate__restore_path_keeps_and_dumps_what_slipped_in(db, tmp_path):
    """Non-atomic plan, a writer meanwhile: restored, the failed database kept, the rows written
    after the backup dumped; every acknowledged write is live or in the dump."""
    at_0001(db)
    result, acked, during = run_with_writer(db, tmp_path)
    assert result.returncode == 1
    line = one_line_error(result.stderr)
    kept = re.search(
        r"the database was restored from backup-pre_migrate-\S+ \(taken before the migration\); rows "
        r"differ from the backup, written after it by other connections or by the failed migration "
        r"itself \(migrapp_item: \d+ new, \d+ changed(?:, \d+ not in the failed database \(pk [^)]*\))?\), "
        r"so the failed database is kept as (\S+) and its "
        r"\d+ new and changed rows of the project's models are in \S+changes-\S+-default\.json .*\. "
        r"Drop \1 when done\. Fix the migration and run safemigrate again$",
        line,
    )
    assert kept, line
    live, dumped = names(db, db.name), dumped_names(line)
    assert acked <= live | dumped, sorted(acked - live - dumped)
    assert acked & (dumped - live), "no write slipped in: the test proves nothing"
    assert len(during & acked) >= DURING - 1, sorted(during - acked)
    assert during & acked <= dumped, sorted(during & acked - dumped)  # made after the backup
    assert dumped <= names(db, kept[1])  # with item1, which the migration itself changed
    assert db.leftovers() == [kept[1]]
    db.server.drop(kept[1])
    assert "note" not in db.server.columns(db.name, "migrapp_item")
    # The command the message prints, run as printed once the fixed migration is applied.
    command = re.search(r"\(review, then load with manage\.py (loaddata \S+);", line)[1].split()
    db.ok("migrate", "-v0")
    db.ok(*command)
    assert dumped <= names(db, db.name)


def test_safemigrate__restore_path_with_no_other_writer_keeps_nothing(db):
    """Nobody else wrote: the failed database is compared, dropped, and the message says so."""
    at_0001(db)
    db.server.query("DELETE FROM migrapp_item WHERE qty > 0", database=db.name)  # qty 0: x10 is 0
    result = db.run("migrate", MIGRAPP_FAIL="1")
    assert result.returncode == 1
    line = one_line_error(result.stderr)
    assert line.endswith(
        "; the database was restored from "
        + re.search(r"(backup-pre_migrate-\S+) ", line)[1]
        + " and is as it was before; compared table by table, the failed database held no row "
        "written after the backup, so nothing was lost. Fix the migration and run safemigrate again"
    ), line
    assert db.leftovers() == []
    assert names(db, db.name) == {"item0"}


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)  # the renaming swap is PostgreSQL's
def test_safemigrate__reconnecting_clients_cannot_block_the_postgresql_swap(db):
    """A pool reconnecting in a tight loop: the restore path's swap still goes through."""
    at_0001(db)
    before = db.content()
    stop = threading.Event()
    connected = []

    def hammer() -> None:
        """Hold a connection open, and open a new one the moment it is ended (a pool)."""
        while not stop.is_set():
            try:
                conn = db.server.connect(db.name)
                connected.append(1)
                while not stop.is_set():
                    conn.execute("SELECT 1")
            except Exception:  # noqa: BLE001, S110 - ended or refused: reconnect at once
                pass

    threads = [threading.Thread(target=hammer) for _ in range(12)]
    for t in threads:
        t.start()
    try:
        result = db.run("migrate", MIGRAPP_FAIL="1")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert result.returncode == 1
    line = one_line_error(result.stderr)
    assert "the database was restored from backup-pre_migrate-" in line, line
    assert len(connected) > 12
    assert db.content() == before
    allowed = db.server.query("SELECT datallowconn FROM pg_database WHERE datname = %s", (db.name,))
    assert allowed == [(True,)]
    for name in db.leftovers():
        db.server.drop(name)


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)  # MariaDB's DDL is not transactional
def test_safemigrate__kill_9_on_postgresql_leaves_pre_or_post_state(db):
    """The server aborts the killed client's transaction: never a mix, no restore needed."""
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    seen = []
    for _ in range(4):
        at_0001(db)
        proc = popen("migrate", env={**db.env, "MIGRAPP_ATOMIC": "1", "MIGRAPP_SLOW": "0.5"})
        time.sleep(rng.uniform(0.5, 8))
        proc.kill()
        proc.communicate(timeout=60)
        applied = db.server.query(
            "SELECT 1 FROM django_migrations WHERE app = 'migrapp' AND name = '0002_item_note'",
            database=db.name,
        )
        columns = db.server.columns(db.name, "migrapp_item")
        qty = sorted(r[0] for r in db.server.query("SELECT qty FROM migrapp_item", database=db.name))
        if applied:
            assert "note" in columns
            assert qty == [0, 10, 20]
            seen.append("post")
        else:
            assert "note" not in columns
            assert qty == [0, 1, 2]
            seen.append("pre")
    print(f"seed {seed}: {seen}")
    assert db.leftovers() == []
    db.ok("migrate", "-v0")  # migrapp at its head again for the other tests of this module


def test_lock_is_held__seen_from_another_connection(db, django_db_blocker):
    """What the fence middleware asks per unsafe request: held by someone, for a migration, now?"""
    from tests.safemigrate.vendors.servers import adapter_for

    holder, asker = adapter_for(db.server, db.name), adapter_for(db.server, db.name)
    with django_db_blocker.unblock():  # the asker runs on a Django connection, as in a request
        assert not asker.lock_is_held()
        assert holder.try_lock()
        try:
            assert asker.lock_is_held()
            assert not asker.migration_running()  # a backup, say: the fence lets writes through
            holder.mark_migrating(on=True)
            assert asker.migration_running()
            holder.mark_migrating(on=False)
            assert not asker.migration_running()
            holder.mark_migrating(on=True)
        finally:
            holder.unlock()  # ending the session ends the migration mark too
        deadline = time.monotonic() + 60  # the server ends the holder's session asynchronously
        while (asker.lock_is_held() or asker.migration_running()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not asker.lock_is_held()
        assert not asker.migration_running()
        asker.connection.close()
