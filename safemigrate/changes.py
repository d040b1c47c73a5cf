"""What was written after a backup, found by comparing the failed database kept aside with it.

On the restore path the failed database is kept (a renamed database, a copied SQLite file) and
the pre-migration backup swapped in. ``compare_kept`` then reads both, table by table, on the
columns they share with the same type: rows new or changed in the kept copy, rows gone from it.
The project's models among them are written to a JSON fixture that ``manage.py loaddata`` reads
(the kept copy's values, primary keys included); deleted rows cannot be loaded, so their keys are
listed instead. Nothing is decided about who wrote a row: the failed migration's own changes
count too, so a difference is reported, never guessed away.

Left out of the comparison: ``django_migrations`` (the migration's own bookkeeping), safemigrate's
catalogue and run log (rebuilt from the backup folder), and the tables a backup never holds rows
of (sessions). Tables that exist in only one of the two (made or dropped by the migration) have
nothing to compare.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.apps import apps
from django.core import serializers
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, models
from django.db.backends.base.base import BaseDatabaseWrapper

from safemigrate.backup import ensure_backup_dir
from safemigrate.codec import fsync_dir
from safemigrate.jsondump import NATURAL_PRIMARY, dumped_models
from safemigrate.vendors import get_adapter
from safemigrate.vendors.base import SECRET_TABLES

logger = logging.getLogger("safemigrate")

PAGE = 1000
"""Rows read per query from each database (memory stays flat however large the tables)."""
SHOWN = 5
"""Deleted keys named per table in a message (the log has them all)."""
_BOOKKEEPING_APPS = ("safemigrate",)


@dataclass(frozen=True)
class TableChanges:
    """One table's rows that differ between the kept (failed) database and the restored one."""

    table: str
    new: list[Any] = field(default_factory=list)
    """Primary keys only in the kept copy."""
    changed: list[Any] = field(default_factory=list)
    """Primary keys in both, with other values in the kept copy."""
    deleted: list[Any] = field(default_factory=list)
    """Primary keys only in the restored database: deleted after the backup (or, from a writer
    that the fence does not hold off, written to the restored database before the comparison)."""
    unkeyed: int = 0
    """Rows that differ in a table without a single-column primary key (counted, not named)."""
    model: str | None = None
    """The model whose new and changed rows are in the dump; None: only in the kept copy."""

    @property
    def written(self) -> int:
        return len(self.new) + len(self.changed) + self.unkeyed


@dataclass(frozen=True)
class KeptChanges:
    """The comparison's outcome; ``dump`` holds the new and changed rows of the project's models."""

    tables: list[TableChanges]
    dump: Path | None = None

    @property
    def found(self) -> bool:
        return bool(self.tables)

    @property
    def dumped(self) -> int:
        return sum(len(t.new) + len(t.changed) for t in self.tables if t.model)

    @property
    def not_dumped(self) -> list[str]:
        return [t.table for t in self.tables if t.written and not t.model]

    def summary(self) -> str:
        """``migrapp_item: 12 new, 2 changed, 1 not in the failed database (pk 3)``, per table."""
        parts = []
        for t in self.tables:
            counts = [
                f"{n} {what}"
                for n, what in ((len(t.new), "new"), (len(t.changed), "changed"), (t.unkeyed, "differing"))
                if n
            ]
            if t.deleted:
                shown = ", ".join(str(pk) for pk in t.deleted[:SHOWN])
                more = f" and {len(t.deleted) - SHOWN} more" if len(t.deleted) > SHOWN else ""
                counts.append(f"{len(t.deleted)} not in the failed database (pk {shown}{more})")
            parts.append(f"{t.table}: {', '.join(counts)}")
        return "; ".join(parts)


def compare_kept(*, alias: str, kept: str) -> KeptChanges:
    """Compare the kept failed database ``kept`` with database ``alias`` (the restored backup).

    Writes the dump (``changes-<UTC time>-<alias>.json`` in the backup folder, 0600) when any
    model's rows are new or changed. Never changes either database.
    """
    live = connections[alias]
    other = _connect_kept(alias, kept)
    try:
        # One read snapshot of the restored database, taken right after the swap: writes that
        # land on it from now on are not mistaken for rows the kept copy lacks.
        with get_adapter(alias).read_snapshot():
            tables = _compare(live, other)
        if not tables:
            return KeptChanges(tables=[])
        dump = _dump(alias, other, tables)
        return KeptChanges(tables=tables, dump=dump)
    finally:
        other.close()
        del connections[other.alias]


def _connect_kept(alias: str, kept: str) -> BaseDatabaseWrapper:
    """A Django connection to the kept copy, registered under its own alias for the ORM.

    Built as Django builds its "no database" connection (``_nodb_cursor``): the live
    connection's class and settings, another database name.
    """
    live = connections[alias]
    name = f"safemigrate_kept_{alias}"
    settings_dict = get_adapter(alias).kept_settings(kept)
    wrapper: BaseDatabaseWrapper = live.__class__(settings_dict, alias=name)
    connections[name] = wrapper
    return wrapper


def _skipped_tables() -> set[str]:
    skipped = {"django_migrations", *SECRET_TABLES}
    for label in _BOOKKEEPING_APPS:
        try:
            config = apps.get_app_config(label)
        except LookupError:
            continue
        skipped |= {m._meta.db_table for m in config.get_models(include_auto_created=True)}
    return skipped


def _columns(conn: BaseDatabaseWrapper, cursor: Any, table: str) -> dict[str, Any]:
    return {c.name: c for c in conn.introspection.get_table_description(cursor, table)}


def _integer(conn: BaseDatabaseWrapper, info: Any) -> bool:
    """Does the column hold integers (so Python orders its values as the database does)?"""
    try:
        kind = conn.introspection.get_field_type(info.type_code, info)
    except (KeyError, TypeError, AttributeError):
        return False
    return "Integer" in kind or "AutoField" in kind


def _compare(live: BaseDatabaseWrapper, kept: BaseDatabaseWrapper) -> list[TableChanges]:
    skipped = _skipped_tables()
    found: list[TableChanges] = []
    with live.cursor() as lc, kept.cursor() as kc:
        common = sorted(
            (set(live.introspection.table_names(lc)) & set(kept.introspection.table_names(kc))) - skipped
        )
        for table in common:
            live_cols, kept_cols = _columns(live, lc, table), _columns(kept, kc, table)
            cols = [
                c
                for c, info in live_cols.items()
                if c in kept_cols and kept_cols[c].type_code == info.type_code
            ]
            if not cols:
                continue
            pk = live.introspection.get_primary_key_column(lc, table)
            if pk in cols and _integer(live, live_cols[pk]):
                changes = _compare_merged((live, lc), (kept, kc), table, pk, [c for c in cols if c != pk])
            elif pk in cols:
                changes = _compare_keyed((live, lc), (kept, kc), table, pk, [c for c in cols if c != pk])
            else:
                changes = _compare_unkeyed((live, lc), (kept, kc), table, cols)
            if changes.written or changes.deleted:
                found.append(changes)
    return found


def _pages(
    conn: BaseDatabaseWrapper, cursor: Any, table: str, pk: str, cols: list[str]
) -> Iterator[list[Any]]:
    """Rows ``(pk, *cols)`` in primary-key order, PAGE at a time (keyset pagination)."""
    qn = conn.ops.quote_name
    select = f"SELECT {', '.join(qn(c) for c in [pk, *cols])} FROM {qn(table)}"  # noqa: S608
    order = f" ORDER BY {qn(pk)} LIMIT {PAGE}"
    cursor.execute(select + order)
    while rows := list(cursor.fetchall()):
        yield rows
        if len(rows) < PAGE:
            return
        cursor.execute(f"{select} WHERE {qn(pk)} > %s{order}", [rows[-1][0]])


def _fetch(
    conn: BaseDatabaseWrapper, cursor: Any, table: str, pk: str, cols: list[str], keys: list[Any]
) -> dict[Any, tuple[Any, ...]]:
    qn = conn.ops.quote_name
    marks = ", ".join(["%s"] * len(keys))
    cursor.execute(
        f"SELECT {', '.join(qn(c) for c in [pk, *cols])} FROM {qn(table)} "  # noqa: S608
        f"WHERE {qn(pk)} IN ({marks})",
        keys,
    )
    return {row[0]: tuple(row[1:]) for row in cursor.fetchall()}


_Side = tuple[BaseDatabaseWrapper, Any]
"""A connection and an open cursor of it."""


def _compare_merged(live: _Side, kept: _Side, table: str, pk: str, cols: list[str]) -> TableChanges:
    """Integer primary keys: both tables read once in key order, side by side (a merge join)."""
    new: list[Any] = []
    changed: list[Any] = []
    deleted: list[Any] = []
    end: tuple[Any, ...] = (None,)  # a sentinel: compared by identity
    before = (row for rows in _pages(*live, table, pk, cols) for row in rows)
    after = (row for rows in _pages(*kept, table, pk, cols) for row in rows)
    a, b = next(before, end), next(after, end)
    while a is not end or b is not end:
        if b is end or (a is not end and a[0] < b[0]):
            deleted.append(a[0])
            a = next(before, end)
        elif a is end or b[0] < a[0]:
            new.append(b[0])
            b = next(after, end)
        else:
            if tuple(a[1:]) != tuple(b[1:]):
                changed.append(b[0])
            a, b = next(before, end), next(after, end)
    return TableChanges(table=table, new=new, changed=changed, deleted=deleted)


def _compare_keyed(live: _Side, kept: _Side, table: str, pk: str, cols: list[str]) -> TableChanges:
    """Other primary keys (text, UUID): the kept rows looked up page by page in the live table."""
    new: list[Any] = []
    changed: list[Any] = []
    deleted: list[Any] = []
    for rows in _pages(*kept, table, pk, cols):
        there = _fetch(*live, table, pk, cols, [r[0] for r in rows])
        for row in rows:
            before = there.get(row[0])
            if before is None:
                new.append(row[0])
            elif before != tuple(row[1:]):
                changed.append(row[0])
    for rows in _pages(*live, table, pk, []):  # what the kept copy no longer has
        present = _fetch(*kept, table, pk, [], [r[0] for r in rows])
        deleted += [r[0] for r in rows if r[0] not in present]
    return TableChanges(table=table, new=new, changed=changed, deleted=deleted)


def _compare_unkeyed(live: _Side, kept: _Side, table: str, cols: list[str]) -> TableChanges:
    """No single-column primary key: compare the rows as multisets of their values."""

    def rows(conn: BaseDatabaseWrapper, cursor: Any) -> dict[int, int]:
        qn = conn.ops.quote_name
        cursor.execute(f"SELECT {', '.join(qn(c) for c in cols)} FROM {qn(table)}")  # noqa: S608
        seen: dict[int, int] = {}
        while batch := cursor.fetchmany(PAGE):
            for row in batch:
                key = hash(repr(tuple(row)))  # values may be unhashable (JSON, arrays)
                seen[key] = seen.get(key, 0) + 1
        return seen

    before, after = rows(*live), rows(*kept)
    differing = sum(max(n - before.get(k, 0), 0) for k, n in after.items())
    gone = sum(max(n - after.get(k, 0), 0) for k, n in before.items())
    return TableChanges(table=table, unkeyed=differing + gone)


def _dump(alias: str, kept: BaseDatabaseWrapper, tables: list[TableChanges]) -> Path | None:
    """The new and changed rows of the project's models, as a ``loaddata`` fixture; marks the
    tables it covers (``TableChanges.model``)."""
    by_table = {m._meta.db_table: m for m in dumped_models(alias=alias)}
    with kept.cursor() as cursor:
        present = {t: set(_columns(kept, cursor, t)) for t in kept.introspection.table_names(cursor)}
    chosen: list[tuple[int, type[models.Model]]] = []
    for i, t in enumerate(tables):
        model = by_table.get(t.table)
        if model is None or not (t.new or t.changed) or t.unkeyed:
            continue
        through = [f.remote_field.through for f in model._meta.local_many_to_many]
        needed = {model._meta.db_table: {f.column for f in model._meta.concrete_fields}}
        needed |= {
            m._meta.db_table: {f.column for f in m._meta.concrete_fields}
            for m in through
            if m is not None and m._meta.auto_created
        }
        if all(cols <= present.get(table, set()) for table, cols in needed.items()):
            chosen.append((i, model))
    if not chosen:
        return None
    directory = ensure_backup_dir(alias)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = directory / f"changes-{stamp}-{alias}.json"
    partial = directory / f".{path.name}.partial"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            first = True
            f.write("[\n")
            for i, model in chosen:
                label = model._meta.label_lower
                keys = tables[i].new + tables[i].changed
                for start in range(0, len(keys), PAGE):
                    objs = model._base_manager.using(kept.alias).filter(pk__in=keys[start : start + PAGE])
                    for item in serializers.serialize(
                        "python",
                        objs.order_by("pk"),
                        use_natural_foreign_keys=True,
                        use_natural_primary_keys=label in NATURAL_PRIMARY,
                    ):
                        f.write(("" if first else ",\n") + json.dumps(item, cls=DjangoJSONEncoder))
                        first = False
                tables[i] = dataclasses.replace(tables[i], model=label)
            f.write("\n]\n")
            f.flush()
            os.fsync(f.fileno())
        partial.replace(path)
        fsync_dir(directory)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path
