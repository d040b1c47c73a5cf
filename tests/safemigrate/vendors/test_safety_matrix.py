"""The safety core on the real PostgreSQL and MariaDB servers, driven through manage.py.

Backup, restore, automatic rollback, the lock, bad input and verifybackup: the same guarantees
as on SQLite (tests/safemigrate/test_sequence.py and friends), engine by engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
from pathlib import Path

import pytest

from tests.safemigrate.vendors.servers import LiveDB, adapter_for

TERMINATED = {"postgresql": "terminating", "mysql": "killing"}


def add_items(db: LiveDB, *names: str) -> None:
    for name in names:
        db.server.query(
            "INSERT INTO migrapp_item (name, qty, note) VALUES (%s, %s, %s)",
            (name, len(name), f"note {name}"),
            database=db.name,
        )


def test_backup__verified_with_manifest_and_row_counts(db):
    add_items(db, "squat", "bench", "deadlift")
    result = db.backup()
    path = Path(result["path"])
    assert result["verified"] is True
    assert result["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert result["size"] == path.stat().st_size
    assert path.name.endswith(".pgdump.zst" if db.server.engine == "postgresql" else ".sql.zst")
    assert path.stat().st_mode & 0o777 == 0o600
    manifest = json.loads(Path(f"{path}.manifest.json").read_text())
    assert manifest["vendor"] == db.server.engine
    assert manifest["database_name"] == db.server.display(db.name)
    counted = db.server.query("SELECT count(*) FROM migrapp_item", database=db.name)[0][0]
    assert manifest["row_counts"]["migrapp_item"] == counted >= 3
    assert set(manifest["row_counts"]) == set(db.server.tables(db.name))
    assert manifest["migrations"]["migrapp"] == ["0001_initial", "0002_item_note"]
    assert db.leftovers() == []


def test_restore__brings_data_back_and_ends_other_connections(db):
    """An open transaction elsewhere does not block the restore: it is ended, with a log line."""
    add_items(db, "press")
    before = db.content()
    name = db.backup()["name"]
    db.server.query("DELETE FROM migrapp_item", database=db.name)
    add_items(db, "not in the backup")
    other = db.server.connect(db.name, autocommit=False)
    other.cursor().execute("SELECT count(*) FROM migrapp_item")  # holds a lock on the table
    try:
        result = db.run("restore", name, "--noinput")
        assert result.returncode == 0, result.stderr
        assert f"Restored {name}" in result.stdout
        assert re.search(rf"{TERMINATED[db.server.engine]} 1 connection\(s\) to {db.name} ", result.stderr), (
            result.stderr
        )
        with pytest.raises(Exception, match=r"(?i)terminat|gone away|lost connection|closed"):
            other.cursor().execute("SELECT 1")
    finally:
        other.close()
    assert db.content() == before
    assert db.leftovers() == []


def test_safemigrate__failing_migration_rolls_back_to_identical_content(db):
    """migrapp 0002 is non-atomic and fails half-way: the backup puts every row back (restore path);
    the row the half-run data migration changed is reported, kept and dumped, never guessed away."""
    db.ok("migrate", "migrapp", "0001", "--no-backup", "-v0")
    db.server.query("DELETE FROM migrapp_item", database=db.name)
    for n in range(3):
        db.server.query(
            "INSERT INTO migrapp_item (name, qty) VALUES (%s, %s)",
            (f"item{n}", n),
            database=db.name,
        )
    before = db.content()
    result = db.run("migrate", MIGRAPP_FAIL="1")
    assert result.returncode == 1
    kept = re.search(
        r"CommandError: migration migrapp\.0002_item_note failed \(MIGRAPP_FAIL: data migration "
        r"failed half-way\); the database was restored from backup-pre_migrate-\S+ \(taken before "
        r"the migration\); rows differ from the backup, written after it by other connections or by "
        r"the failed migration itself \(migrapp_item: 1 changed\), so the failed database is kept as "
        r"(\S+) and its 1 new and changed rows of the project's models are in ",
        result.stderr,
    )
    assert kept, result.stderr
    assert db.leftovers() == [kept[1]]
    assert "note" in db.server.columns(kept[1], "migrapp_item")  # as it was at the failure
    db.server.drop(kept[1])
    assert "Traceback" not in result.stderr
    assert db.content() == before
    assert "note" not in db.server.columns(db.name, "migrapp_item")
    status = db.server.query("SELECT status FROM safemigrate_migrationrun ORDER BY id DESC", database=db.name)
    assert status[0][0] == "rolled_back"
    assert db.leftovers() == []
    # And without the failure it applies, which leaves migrapp at its head for the next tests.
    assert "Applied 1 migration(s) safely" in db.ok("migrate").stdout
    assert "note" in db.server.columns(db.name, "migrapp_item")


def test_lock__second_process_times_out_naming_the_holder(db):
    holder = adapter_for(db.server, db.name)
    assert holder.try_lock()
    try:
        result = db.run("backup", SAFEMIGRATE_LOCK_TIMEOUT="1")
        if db.server.engine == "postgresql":
            host = re.escape(socket.gethostname())
            who = rf"safemigrate pid {os.getpid()} on {host}: server backend \d+"
        else:
            (conn_id,) = db.server.query("SELECT IS_USED_LOCK(%s)", (f"safemigrate:{db.name}",))[0]
            who = rf"server connection {conn_id} of root from 127\.0\.0\.1:\d+, holding it for \d+s"
        assert result.returncode == 1
        assert re.search(
            rf"CommandError: another safemigrate run holds the lock on "
            rf"{re.escape(db.server.display(db.name))} \({who}.*\); waited 1s",
            result.stderr,
        ), result.stderr
    finally:
        holder.unlock()
    assert db.run("backup").returncode == 0  # released: the next run gets it


def test_restore__bit_flipped_backup_refused_database_unchanged(db):
    path = Path(db.backup()["path"])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    before = db.content()
    result = db.run("restore", path.name, "--noinput")
    assert result.returncode == 1
    assert re.search(rf"CommandError: .*{re.escape(path.name)} is damaged", result.stderr), result.stderr
    assert db.content() == before
    assert db.leftovers() == []


def test_restore__truncated_backup_refused_database_unchanged(db, tmp_path):
    path = Path(db.backup()["path"])
    loose = tmp_path / path.name  # without its manifest: only the stream itself can tell
    loose.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    shutil.copyfile(loose, path)
    before = db.content()
    result = db.run("restore", path.name, "--noinput")
    assert result.returncode == 1
    assert "the file is truncated or damaged; restore another backup" in result.stderr
    result = db.run("restore", "--file", str(loose), "--noinput", "--no-safety-backup")
    assert result.returncode == 1
    # Where the cut falls decides who notices first: the decompressor, the engine's tool, or
    # the adapter (no data at all); each refuses before the live database is touched.
    assert re.search(
        rf"CommandError: ({re.escape(loose.name)} is damaged or truncated|the backup holds no "
        r"data \(empty or truncated\)|pg_restore into scratch database \S+ failed|the dump in the "
        r"backup is incomplete)",
        result.stderr,
    ), result.stderr
    assert db.content() == before
    assert db.leftovers() == []


def test_restore__dump_that_fails_to_load_changes_nothing(db, tmp_path):
    """A failed statement fails the restore in the scratch database; the tool's args stay out."""
    if db.server.engine == "postgresql":
        bad = b"PGDMP" + os.urandom(4000)
        # Random bytes after the magic: the table of contents cannot be read, so nothing loads.
        expected = r"the backup was refused before loading: .*; nothing was loaded"
        not_a_dump = "the backup does not contain a PostgreSQL pg_dump archive"
    else:
        bad = b"-- MariaDB dump\nCREATE TABLE t (id int);\nTHIS IS NOT SQL;\n-- Dump completed\n"
        expected = r"loading the dump into scratch schema \S+ failed: ERROR 1064 \(42000\) at line 3"
        not_a_dump = "the backup does not contain a MariaDB/MySQL dump"
    before = db.content()
    (tmp_path / "bad.dump").write_bytes(bad)
    result = db.run("restore", "--file", str(tmp_path / "bad.dump"), "--noinput", "--no-safety-backup")
    assert result.returncode == 1
    assert re.search(expected, result.stderr), result.stderr
    # Said only as far as it is known: the load ran in the scratch copy (and the content is checked).
    assert "not in the live one" in result.stderr or "nothing was loaded" in result.stderr
    assert "--exit-on-error" not in result.stderr
    assert "--binary-mode" not in result.stderr
    (tmp_path / "text.dump").write_bytes(b"hello, I am not a database\n")
    result = db.run("restore", "--file", str(tmp_path / "text.dump"), "--noinput", "--no-safety-backup")
    assert result.returncode == 1
    assert not_a_dump in result.stderr
    assert db.content() == before
    assert db.leftovers() == []


def test_verifybackup__restores_into_a_scratch_database_and_drops_it(db):
    name = db.backup()["name"]
    result = db.run("verifybackup", name, SAFEMIGRATE_LOG_LEVEL="INFO")
    assert result.returncode == 0, result.stderr
    assert f"OK      {name}" in result.stdout
    created = re.search(r"created scratch (?:database|schema) (\S+)", result.stderr)
    assert created, result.stderr
    assert created[1].startswith(f"{db.name}_smscratch_")
    assert re.search(rf"dropped scratch (?:database|schema) {created[1]}", result.stderr)
    assert db.leftovers() == []
    manifest = json.loads((db.backup_dir / f"{name}.manifest.json").read_text())
    assert manifest["verified"] is True
