"""Comparing a kept failed database with the restored one: what is new, changed, gone, dumped."""

from __future__ import annotations

import json
import sqlite3

import pytest
from django.db import connection

from safemigrate.changes import compare_kept
from tests.migrapp.models import Item

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def kept(tmp_path, backup_dir):
    """A copy of the test database as it is now (the "failed database" kept aside)."""
    Item.objects.bulk_create([Item(name=f"item{n}", qty=n) for n in range(4)])
    path = tmp_path / "db.sqlite3.failed-test"
    connection.ensure_connection()
    dst = sqlite3.connect(path)
    connection.connection.backup(dst)
    dst.close()
    return path


def test_compare_kept__identical_finds_nothing_and_writes_no_dump(kept, backup_dir):
    changes = compare_kept(alias="default", kept=str(kept))
    assert not changes.found
    assert changes.dump is None
    assert not list(backup_dir.glob("changes-*"))


def test_compare_kept__new_changed_and_deleted_rows(kept, backup_dir):
    """What the kept copy has that the restored database has not is dumped; deletions are named."""
    ids = list(Item.objects.order_by("id").values_list("id", flat=True))
    with sqlite3.connect(kept) as conn:
        conn.execute("INSERT INTO migrapp_item (name, qty, note) VALUES ('late', 7, '')")
        conn.execute("UPDATE migrapp_item SET qty = 99 WHERE id = ?", (ids[1],))
        conn.execute("DELETE FROM migrapp_item WHERE id = ?", (ids[2],))
        conn.execute("INSERT INTO django_session VALUES ('k', 'd', '2030-01-01')")  # never compared
    changes = compare_kept(alias="default", kept=str(kept))
    assert [t.table for t in changes.tables] == ["migrapp_item"]
    table = changes.tables[0]
    assert (len(table.new), table.changed, table.deleted, table.model) == (
        1,
        [ids[1]],
        [ids[2]],
        "migrapp.item",
    )
    assert changes.summary() == f"migrapp_item: 1 new, 1 changed, 1 not in the failed database (pk {ids[2]})"
    rows = json.loads(changes.dump.read_text())
    assert {(r["fields"]["name"], r["fields"]["qty"]) for r in rows} == {("late", 7), ("item1", 99)}
    assert oct(changes.dump.stat().st_mode & 0o777) == "0o600"
    assert changes.dump.parent == backup_dir


def test_compare_kept__a_table_the_dump_cannot_hold_is_named(kept):
    """Rows of a table the failed migration left without a model column stay in the kept copy."""
    with sqlite3.connect(kept) as conn:
        conn.execute("ALTER TABLE migrapp_item DROP COLUMN note")
        conn.execute("INSERT INTO migrapp_item (name, qty) VALUES ('late', 7)")
    changes = compare_kept(alias="default", kept=str(kept))
    assert changes.not_dumped == ["migrapp_item"]
    assert changes.dump is None


def test_compare_kept__text_keys_and_a_table_without_a_key(tmp_path, backup_dir):
    """Keys Python may order unlike the database are looked up; keyless rows are counted."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE textkeyed (k TEXT PRIMARY KEY, v INTEGER)")
        cursor.execute("CREATE TABLE keyless (v INTEGER)")
        cursor.execute("INSERT INTO textkeyed VALUES ('b', 1), ('a', 2), ('C', 3)")
        cursor.execute("INSERT INTO keyless VALUES (1), (1), (2)")
    try:
        path = tmp_path / "kept"
        dst = sqlite3.connect(path)
        connection.connection.backup(dst)
        dst.execute("UPDATE textkeyed SET v = 9 WHERE k = 'a'")
        dst.execute("DELETE FROM textkeyed WHERE k = 'C'")
        dst.execute("INSERT INTO textkeyed VALUES ('z', 0)")
        dst.execute("DELETE FROM keyless WHERE v = 2")
        dst.execute("INSERT INTO keyless VALUES (3)")
        dst.commit()
        dst.close()
        changes = compare_kept(alias="default", kept=str(path))
        assert changes.summary() == (
            "keyless: 2 differing; textkeyed: 1 new, 1 changed, 1 not in the failed database (pk C)"
        )
        assert changes.not_dumped == ["keyless", "textkeyed"]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE textkeyed")
            cursor.execute("DROP TABLE keyless")
