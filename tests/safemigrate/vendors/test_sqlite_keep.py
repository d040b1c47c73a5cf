"""SQLite's restore with the failed database kept: no write falls between the copy and the restore."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db.utils import ConnectionHandler

from safemigrate.vendors.sqlite import Adapter, SQLiteScratch

WRITER = r"""
import pathlib, sqlite3, sys, time
db, stop = sys.argv[1], pathlib.Path(sys.argv[2])
conn = sqlite3.connect(db, timeout=120, isolation_level=None)
n = 0
while not stop.exists():
    n += 1
    try:
        conn.execute("INSERT INTO item (name) VALUES (?)", (f"w{n}",))
    except sqlite3.OperationalError as exc:
        print("error", n, exc, flush=True)
    else:
        print("ack", n, flush=True)
    time.sleep(0.002)
"""


def adapter_for(path: Path) -> Adapter:
    handler = ConnectionHandler(
        {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(path),
                "OPTIONS": {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"},
            }
        }
    )
    return Adapter(handler["default"])


def names(path: Path | str) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM item")}


@pytest.mark.parametrize("mb", [150])
def test_swap_in__keep_loses_no_write_committed_while_the_copy_is_made(tmp_path, mb, django_db_blocker):
    """A writer committing every 2 ms while a large failed database is kept and replaced: each
    acknowledged row is in the kept copy or in the restored database."""
    db = tmp_path / "db.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("CREATE TABLE filler (x BLOB)")
        conn.executemany("INSERT INTO filler VALUES (randomblob(100000))", [()] * (mb * 10))
    scratch = tmp_path / "scratch.sqlite3"
    with sqlite3.connect(db) as src, sqlite3.connect(scratch) as dst:
        src.backup(dst)  # the "backup": what the restore brings back
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), str(stop)], stdout=subprocess.PIPE, text=True
    )
    adapter = adapter_for(db)
    try:
        time.sleep(0.5)
        started = time.monotonic()
        with django_db_blocker.unblock():
            kept = adapter.swap_in(SQLiteScratch(scratch), keep=True)
        took = time.monotonic() - started
        time.sleep(0.3)
    finally:
        stop.touch()
        out, _ = writer.communicate(timeout=120)
        with django_db_blocker.unblock():
            adapter.connection.close()
    assert kept is not None
    acked = {f"w{p[1]}" for p in (line.split() for line in out.splitlines()) if p[0] == "ack"}
    live, in_kept = names(db), names(kept)
    assert acked <= live | in_kept, f"{len(acked - live - in_kept)} acknowledged rows lost ({took:.2f}s)"
    assert in_kept, "the writer wrote before the swap"
    assert live, "the writer wrote after the swap"
