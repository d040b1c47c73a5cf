"""Import: check a dump against this database, then insert its rows in one transaction.

The dump's checksum, models and migrations are checked before anything is touched; rows go in
in batches with foreign-key checks deferred to the end, all or nothing. Each value goes through
its field's own ``get_db_prep_save`` without ``pre_save`` (as ``loaddata``'s raw saves do, see
``columns.import_column``), so ``auto_now`` values and primary keys arrive exactly; no model
signals are sent.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.core import serializers
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.management.color import no_style
from django.db import DatabaseError, connections, models, transaction
from django.db.migrations.executor import MigrationExecutor

from safemigrate.backup import BackupResult, create_backup
from safemigrate.codec import BackupReader
from safemigrate.conf import get_settings
from safemigrate.constants import DUMP_MANIFEST_SUFFIX
from safemigrate.exceptions import (
    BackupError,
    ChecksumMismatch,
    IntegrityCheckFailed,
    RestoreError,
    SafeMigrateError,
)
from safemigrate.files import file_sha256
from safemigrate.jsondump.columns import Column, import_column
from safemigrate.jsondump.export import CHUNK_SIZE, PROGRESS_EVERY
from safemigrate.jsondump.format import CARRIER_KEY, DumpInfo, read_dump_manifest, read_lines
from safemigrate.jsondump.selection import (
    EXCLUDED_APPS,
    NATURAL_PRIMARY,
    applied_migrations,
    auto_m2m,
    dumped_models,
    model_label,
    serialized_fields,
)
from safemigrate.lock import migration_lock
from safemigrate.vendors.base import Progress

logger = logging.getLogger("safemigrate")


@dataclass(frozen=True)
class JsonLoadResult:
    """A loaded dump: rows per model, and the safety backup taken when data was replaced."""

    path: Path
    database: str
    models: dict[str, int]
    duration: float
    replaced: bool = False
    safety_backup: BackupResult | None = None

    @property
    def rows(self) -> int:
        return sum(self.models.values())


def _check_file(info: DumpInfo) -> None:
    if info.size is None or info.sha256 is None:
        return  # only the header is known: the end record's hash is checked while loading
    actual = info.path.stat().st_size
    if actual != info.size:
        raise ChecksumMismatch(
            f"{info.path.name} is {actual:,} bytes but its manifest says {info.size:,}: the file "
            "is truncated or damaged; the database was not changed. Use another dump"
        )
    digest = file_sha256(info.path)
    if digest != info.sha256:
        raise ChecksumMismatch(
            f"checksum mismatch for {info.path.name}: the file is damaged (sha256 {digest[:12]}…, "
            f"manifest says {info.sha256[:12]}…); the database was not changed. Use another dump"
        )


def _check_models(info: DumpInfo, alias: str) -> list[type[models.Model]]:
    known = {model_label(m): m for m in dumped_models(alias=alias)}
    unknown = sorted(set(info.models) - set(known))
    if unknown:
        shown = ", ".join(unknown[:5]) + (", …" if len(unknown) > 5 else "")
        raise RestoreError(
            f"{info.path.name} holds models this project does not have ({shown}): it was made by "
            "another project or by code with other apps; the database was not changed"
        )
    return list(known.values())


def _check_migrations(info: DumpInfo, alias: str) -> None:
    """The database must be fully migrated, at the same migrations as the dump, app by app."""
    connection = connections[alias]
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in pending[:5])
        raise RestoreError(
            f"database {alias!r} is not fully migrated (pending: {names}); run migrate first, "
            "then restore --json"
        )
    here = applied_migrations(alias)
    differ = []
    for app in sorted((set(here) | set(info.migrations)) - EXCLUDED_APPS):
        only_dump = [n for n in info.migrations.get(app, []) if n not in set(here.get(app, []))]
        only_here = [n for n in here.get(app, []) if n not in set(info.migrations.get(app, []))]
        if only_dump or only_here:
            parts = []
            if only_dump:
                parts.append(f"only in the dump: {', '.join(only_dump)}")
            if only_here:
                parts.append(f"only in this database: {', '.join(only_here)}")
            differ.append(f"{app} ({'; '.join(parts)})")
    if differ:
        raise RestoreError(
            f"{info.path.name} was made at other migrations than this code: {'; '.join(differ)}. "
            "Load it with code at the dump's migrations (then migrate), or migrate the source "
            "and dump again; the database was not changed"
        )


def _rows_present(alias: str, model_list: list[type[models.Model]]) -> list[str]:
    return [
        model_label(m)
        for m in model_list
        if model_label(m) not in NATURAL_PRIMARY and m._base_manager.using(alias).exists()
    ]


class _RowError(SafeMigrateError):
    """One row of the dump cannot be loaded; turned into a RestoreError naming it."""


_MISSING = object()


class _ModelLoader:
    """Converts the dump's rows of one model into parameters for one INSERT statement (each
    column through the column codec, ``columns.import_column``)."""

    def __init__(self, model: type[models.Model], alias: str, resolver: _NaturalResolver) -> None:
        self.connection = connections[alias]
        self.resolver = resolver
        self.model, self.label = model, model_label(model)
        self.utc = bool(settings.USE_TZ) and self.connection.timezone_name == "UTC"
        opts = model._meta
        pk = opts.pk
        if pk is None or isinstance(pk, models.CompositePrimaryKey):
            raise RestoreError(f"cannot load {self.label}: composite primary keys are not supported")
        self.fields = serialized_fields(model)
        self.known = {f.name for f in self.fields} | {f.name for f in auto_m2m(model)}
        self.pk_column = self._column(pk)
        self.columns = [(f.name, *self._column(f)) for f in self.fields]
        self.defaults = {f.name: f for f in self.fields}
        qn = self.connection.ops.quote_name
        names = [pk.column, *(f.column for f in self.fields)]
        self.sql = (
            f"INSERT INTO {qn(opts.db_table)} ({', '.join(qn(c) for c in names)}) "  # noqa: S608
            f"VALUES ({', '.join(['%s'] * len(names))})"
        )
        self.m2m: list[tuple[str, str, Column]] = []
        for f in auto_m2m(model):
            through_model: Any = f.remote_field.through
            through = through_model._meta
            sql = (
                f"INSERT INTO {qn(through.db_table)} "  # noqa: S608
                f"({qn(f.m2m_column_name())}, {qn(f.m2m_reverse_name())}) VALUES (%s, %s)"
            )
            target = f.remote_field.model
            self.m2m.append((f.name, sql, self._column(target._meta.pk, natural_of=target)))
        self.width = len(self.fields) + len(self.m2m)

    def _column(self, f: Any, *, natural_of: type[models.Model] | None = None) -> Column:
        return import_column(
            f, connection=self.connection, utc=self.utc, resolve=self.resolver, natural_of=natural_of
        )

    def row(self, obj: dict[str, Any]) -> tuple[list[Any], list[tuple[str, list[Any]]]]:
        """(row parameters, m2m (sql, pairs)) for one object of the dump."""
        fields = obj["fields"]
        if len(fields) != self.width:
            unknown = sorted(set(fields) - self.known)
            if unknown:
                raise _RowError(f"it has fields {self.label} does not have ({', '.join(unknown)})")
        passthrough, convert = self.pk_column
        pk = obj.get("pk")
        if pk is None:
            raise _RowError("it has no primary key (pk)")
        if type(pk) not in passthrough:
            pk = convert(pk)
        values = [pk]
        append, get = values.append, fields.get
        for name, passthrough, convert in self.columns:
            value = get(name, _MISSING)
            if value is None or type(value) in passthrough:
                append(value)
            elif value is _MISSING:
                f = self.defaults[name]
                append(f.get_db_prep_save(f.get_default(), self.connection))
            else:
                append(convert(value))
        m2m = []
        for name, sql, (passthrough, convert) in self.m2m:
            targets = [t if type(t) in passthrough else convert(t) for t in get(name) or ()]
            m2m.append((sql, [(pk, t) for t in targets]))
        return values, m2m


class _NaturalResolver:
    """natural key -> pk in the target database, cached (the models with natural keys are small)."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.cache: dict[tuple[type[models.Model], tuple[Any, ...]], Any] = {}

    def __call__(self, model: type[models.Model], key: list[Any]) -> Any:
        cache_key = (model, tuple(key))
        if cache_key not in self.cache:
            manager: Any = model._default_manager.db_manager(self.alias)
            try:
                self.cache[cache_key] = manager.get_by_natural_key(*key).pk
            except ObjectDoesNotExist as exc:
                raise _RowError(
                    f"it refers to {model_label(model)} {key!r}, which is neither in the dump nor "
                    "in the database"
                ) from exc
        return self.cache[cache_key]


class _Batch:
    """Rows of one model waiting to be inserted together."""

    def __init__(self, loader: _ModelLoader) -> None:
        self.loader = loader
        self.rows: list[list[Any]] = []
        self.m2m: list[list[tuple[str, list[Any]]]] = []
        self.where: list[tuple[int, Any]] = []


def _insert(cursor: Any, batch: _Batch, alias: str, name: str) -> None:
    """Insert a batch inside a savepoint; on a failure, find and name the row that fails."""
    if not batch.rows:
        return
    try:
        with transaction.atomic(using=alias):
            _execute(cursor, batch.loader.sql, batch.rows, batch.m2m)
    except DatabaseError as exc:
        for row, m2m, (line, pk) in zip(batch.rows, batch.m2m, batch.where, strict=True):
            try:
                with transaction.atomic(using=alias):
                    _execute(cursor, batch.loader.sql, [row], [m2m])
            except DatabaseError as row_exc:
                raise _row_error(batch.loader.label, pk, line, name, row_exc) from row_exc
        raise RestoreError(
            f"loading {batch.loader.label} from {name} failed ({_one_line(exc)}); "
            "the database was not changed"
        ) from exc


def _execute(cursor: Any, sql: str, rows: list[list[Any]], m2m: list[list[tuple[str, list[Any]]]]) -> None:
    cursor.executemany(sql, rows)
    pending: dict[str, list[Any]] = {}
    for per_row in m2m:
        for m2m_sql, pairs in per_row:
            pending.setdefault(m2m_sql, []).extend(pairs)
    for m2m_sql, pairs in pending.items():
        if pairs:
            cursor.executemany(m2m_sql, pairs)


def _one_line(problem: BaseException | str) -> str:
    return " ".join(str(problem).split())


def _row_error(label: str, pk: Any, line: int, name: str, problem: BaseException | str) -> RestoreError:
    what = f"{label} pk={pk!r}" if pk is not None else label
    return RestoreError(
        f"cannot load {what} (line {line} of {name}): {_one_line(problem)}; the database was "
        "not changed. Fix that row in the source database and dump again"
    )


def load_json_dump(
    *,
    path: Path | str,
    alias: str = "default",
    replace: bool = False,
    progress: Progress | None = None,
    safety_backup: bool = True,
) -> JsonLoadResult:
    """Load a dump made by ``create_json_dump`` into the migrated database ``alias``.

    Checks the file's checksum, its models and its migrations against this database first, and
    refuses a database that already holds rows unless ``replace`` (then a safety backup is taken
    first, unless ``safety_backup`` is False). Loads in one transaction: on any failure the
    database is exactly as it was. Resets sequences where the database has them.

    Raises ChecksumMismatch for a damaged file and RestoreError naming the model and row for
    anything else.
    """
    started = time.monotonic()
    path = Path(path)
    if path.name.endswith(DUMP_MANIFEST_SUFFIX):
        path = path.with_name(path.name[: -len(DUMP_MANIFEST_SUFFIX)])
    info = read_dump_manifest(path)
    with migration_lock(alias=alias):
        if progress:
            progress(f"checking {path.name}")
        _check_file(info)
        model_list = _check_models(info, alias)
        _check_migrations(info, alias)
        present = _rows_present(alias, model_list)
        if present and not replace:
            shown = ", ".join(present[:3]) + (", …" if len(present) > 3 else "")
            raise RestoreError(
                f"database {alias!r} already has data ({shown}); load into an empty, migrated "
                "database, or replace its data with --replace (a safety backup is taken first)"
            )
        safety: BackupResult | None = None
        if present and safety_backup:
            if progress:
                progress("taking a safety backup of the current database")
            try:
                safety = create_backup(alias=alias, reason="pre_json_restore")
            except (BackupError, IntegrityCheckFailed) as exc:
                raise RestoreError(
                    f"restore --json stopped: the safety backup of the current database failed "
                    f"({exc}); nothing was changed"
                ) from exc
        counts = _load(info, alias=alias, model_list=model_list, clear=bool(present), progress=progress)
    from safemigrate.restore import clear_caches

    clear_caches()
    duration = time.monotonic() - started
    logger.info("loaded %s into %s: %s rows in %.2fs", path.name, alias, sum(counts.values()), duration)
    return JsonLoadResult(
        path=path,
        database=alias,
        models=counts,
        duration=duration,
        replaced=bool(present),
        safety_backup=safety,
    )


def _load(
    info: DumpInfo,
    *,
    alias: str,
    model_list: list[type[models.Model]],
    clear: bool,
    progress: Progress | None,
) -> dict[str, int]:
    """Empty (when ``clear``) and fill the tables in one transaction; checks, then commits."""
    connection = connections[alias]
    name = info.path.name
    with info.path.open("rb") as f, transaction.atomic(using=alias):
        reader = BackupReader(
            f,
            compression=info.compression,
            encrypted=bool(info.encryption),
            key=get_settings().encryption_key,
            name=name,
        )
        with connection.constraint_checks_disabled(), connection.cursor() as cursor:
            if clear:
                _delete_rows(cursor, model_list, connection)
            importer = _Importer(name, alias=alias, model_list=model_list, progress=progress)
            counts = importer.run(read_lines(reader, name=name), cursor)
        reader.check(info.sha256)
        if info.sha256 is None and importer.end_rows is None:
            raise ChecksumMismatch(
                f"{name} ends without its end record: the file is truncated; the database was not changed"
            )
        listed = [] if info.sha256 is None else [("its manifest", "manifest", info.models)]
        if importer.end_rows is not None:
            listed.append(("its end record", "end record", importer.end_rows))
        for where, short, expected in listed:
            differ = sorted(k for k in set(counts) | set(expected) if counts.get(k, 0) != expected.get(k, 0))
            if differ:
                label = differ[0]
                raise RestoreError(
                    f"{name} does not hold the rows {where} lists ({label}: "
                    f"{counts.get(label, 0)} rows, {short} says {expected.get(label, 0)}); "
                    "the database was not changed"
                )
        counts = {label: counts.get(label, 0) for label in listed[-1][2]} | counts if listed else counts
        try:
            connection.check_constraints(table_names=[m._meta.db_table for m in model_list])
        except DatabaseError as exc:
            raise RestoreError(
                f"{name} breaks a foreign key: {_one_line(exc)}; the database was not changed"
            ) from exc
        loaded = [m for m in model_list if counts.get(model_label(m))]
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), loaded):
                cursor.execute(sql)
    return counts


class _Importer:
    """Streams the lines of one dump into batched INSERTs (inside the caller's transaction)."""

    def __init__(
        self,
        name: str,
        *,
        alias: str,
        model_list: list[type[models.Model]],
        progress: Progress | None,
    ) -> None:
        self.name, self.alias, self.progress = name, alias, progress
        self.models = {model_label(m): m for m in model_list}
        self.resolver = _NaturalResolver(alias)
        self.loaders: dict[str, _ModelLoader] = {}
        self.counts: dict[str, int] = {}
        self.batch: _Batch | None = None
        self.total = 0
        self.sha256 = hashlib.sha256()
        """Of the decoded lines so far: what the end record's ``sha256`` covers."""
        self.header = False
        self.end_rows: dict[str, int] | None = None

    def run(self, lines: Iterable[bytes], cursor: Any) -> dict[str, int]:
        numbered = enumerate(lines, start=1)
        first = next(numbered, (1, b""))[1]
        if first.strip() != b"[":
            raise RestoreError(f"{self.name} is not a JSON dump (it does not start with '[')")
        self.sha256.update(first + b"\n")
        for number, line in numbered:
            if line == b"]":
                for after, rest in numbered:
                    if rest.strip():
                        raise RestoreError(f"{self.name} has data after its end (line {after})")
                break
            if self.end_rows is not None:
                raise RestoreError(f"{self.name} has rows after its end record (line {number})")
            obj = self._parse(number, line)
            if CARRIER_KEY in obj:
                self._describe(number, obj[CARRIER_KEY])
            else:
                self._add(number, obj, cursor)
            self.sha256.update(line + b"\n")
        else:
            raise ChecksumMismatch(
                f"{self.name} is truncated (it ends without ']'); the database was not changed"
            )
        self._flush(cursor)
        return self.counts

    def _describe(self, number: int, info: Any) -> None:
        """A header or end record (see ``format.carrier``): checked, never loaded as a row."""
        part = info.get("part") if isinstance(info, dict) else None
        if part == "header" and number == 2:
            self.header = True
            return
        if part == "end" and self.header:
            rows, digest = info.get("rows"), info.get("sha256")
            if not (
                isinstance(rows, dict)
                and all(isinstance(k, str) and type(v) is int for k, v in rows.items())
                and isinstance(digest, str)
            ):
                raise RestoreError(f"line {number} of {self.name}: its end record is damaged")
            if digest != self.sha256.hexdigest():
                raise ChecksumMismatch(
                    f"{self.name} is damaged: its content does not match the checksum in its end "
                    "record; the database was not changed. Use another dump"
                )
            self.end_rows = rows
            return
        raise RestoreError(f"line {number} of {self.name}: a dump description out of place ({part!r})")

    def _parse(self, number: int, line: bytes) -> dict[str, Any]:
        try:
            obj = orjson.loads(line[:-1] if line.endswith(b",") else line)
            obj["model"].lower()
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise RestoreError(
                f"line {number} of {self.name} is not an object of a JSON dump ({exc}); "
                "the database was not changed"
            ) from exc
        return obj  # type: ignore[no-any-return]

    def _add(self, number: int, obj: dict[str, Any], cursor: Any) -> None:
        label = obj["model"]
        self.counts[label] = self.counts.get(label, 0) + 1
        if label in NATURAL_PRIMARY:
            self._flush(cursor)
            _save_natural(obj, self.alias, number, self.name)
            return
        if self.batch is None or self.batch.loader.label != label:
            self._flush(cursor)
            self.batch = _Batch(self._loader(label, number))
        batch = self.batch
        try:
            row, m2m = batch.loader.row(obj)
        except (_RowError, ValidationError, ValueError, TypeError, KeyError) as exc:
            message = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            raise _row_error(label, obj.get("pk"), number, self.name, message) from exc
        batch.rows.append(row)
        batch.m2m.append(m2m)
        batch.where.append((number, obj.get("pk")))
        if len(batch.rows) >= CHUNK_SIZE:
            self._flush(cursor)
            self.batch = _Batch(batch.loader)
        self.total += 1
        if self.progress and self.total % PROGRESS_EVERY == 0:
            self.progress(f"  {self.total:,} rows loaded")

    def _loader(self, label: str, number: int) -> _ModelLoader:
        if label not in self.loaders:
            model = self.models.get(label)
            if model is None:
                raise RestoreError(
                    f"line {number} of {self.name} holds a {label} row, a model this project "
                    "does not have; the database was not changed"
                )
            self.loaders[label] = _ModelLoader(model, self.alias, self.resolver)
            if self.progress:
                self.progress(f"loading {label}")
        return self.loaders[label]

    def _flush(self, cursor: Any) -> None:
        if self.batch is not None:
            _insert(cursor, self.batch, self.alias, self.name)
            self.batch = None


def _save_natural(obj: dict[str, Any], alias: str, number: int, name: str) -> None:
    """Merge one NATURAL_PRIMARY row the way loaddata does (update by natural key, else insert)."""
    try:
        with transaction.atomic(using=alias):
            for deserialized in serializers.deserialize("python", [obj], using=alias):
                deserialized.save(using=alias)
    except (serializers.base.DeserializationError, DatabaseError, ValidationError) as exc:
        raise _row_error(obj.get("model", "?"), None, number, name, exc) from exc


def _delete_rows(cursor: Any, model_list: list[type[models.Model]], connection: Any) -> None:
    """Empty every table the dump fills (foreign keys are checked at the end, so order is free)."""
    qn = connection.ops.quote_name
    for model in reversed(model_list):
        if model_label(model) in NATURAL_PRIMARY:
            continue
        for f in auto_m2m(model):
            through: Any = f.remote_field.through
            cursor.execute(f"DELETE FROM {qn(through._meta.db_table)}")  # noqa: S608
        cursor.execute(f"DELETE FROM {qn(model._meta.db_table)}")  # noqa: S608
