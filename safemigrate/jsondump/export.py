"""Export: every dumped model's rows, in primary-key order, into one verified dump file.

Each model streams from a chunked cursor through orjson into the backup codec (compression,
checksum, optional encryption), inside one read snapshot, so memory stays flat and the same data
gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

import orjson
from django.conf import settings
from django.core import serializers
from django.db import DatabaseError, connections, models

from safemigrate import catalogue
from safemigrate.backup import RunFiles, ensure_backup_dir
from safemigrate.codec import BackupWriter, file_suffix, verify_encoded_file
from safemigrate.conf import get_settings
from safemigrate.exceptions import BackupError
from safemigrate.files import atomic_write, create_exclusive, fsync_dir
from safemigrate.jsondump.columns import Column, export_column, orjson_default
from safemigrate.jsondump.format import (
    EMPTY_TAIL,
    HEAD,
    MAX_LINE,
    SEP,
    TAIL,
    JsonDumpResult,
    dump_manifest_path,
    end_record,
    header_record,
    sidecar_bytes,
)
from safemigrate.jsondump.selection import (
    NATURAL_PRIMARY,
    applied_migrations,
    auto_m2m,
    dumped_models,
    has_natural_key,
    model_label,
    serialized_fields,
    with_foreign_keys,
)
from safemigrate.lock import migration_lock
from safemigrate.manifest import Manifest, partial_path, update_manifest
from safemigrate.vendors import get_adapter
from safemigrate.vendors.base import Progress

logger = logging.getLogger("safemigrate")

CHUNK_SIZE = 2000
"""Rows read per fetch on export and inserted per batch on import."""
PROGRESS_EVERY = 200_000


class _NaturalKeys:
    """pk -> natural key of one model, fetched a chunk at a time; bounded, so memory stays flat."""

    LIMIT = 100_000

    def __init__(self, model: type[models.Model], alias: str, to_field: str) -> None:
        self.model, self.alias, self.to_field = model, alias, to_field
        self.cache: dict[Any, list[Any]] = {}

    def prefetch(self, values: Iterable[Any]) -> None:
        missing = {v for v in values if v is not None and v not in self.cache}
        if not missing:
            return
        if len(self.cache) + len(missing) > self.LIMIT:
            self.cache.clear()
        qs: Any = with_foreign_keys(self.model._base_manager.using(self.alias))
        for obj in qs.filter(**{f"{self.to_field}__in": missing}):
            self.cache[getattr(obj, self.to_field)] = list(obj.natural_key())

    def get(self, value: Any, *, label: str, pk: Any) -> list[Any]:
        try:
            return self.cache[value]
        except KeyError:
            raise BackupError(
                f"cannot dump {label} pk={pk!r}: it refers to {model_label(self.model)} {value!r}, "
                "which does not exist; the database breaks a foreign key (run verifybackup or "
                "fix the row)"
            ) from None


class _ModelWriter:
    """Turns rows of one model, read from a chunked cursor, into lines of Django's JSON format
    (each column through the column codec, ``columns.export_column``)."""

    def __init__(self, model: type[models.Model], alias: str) -> None:
        self.model, self.alias, self.label = model, alias, model_label(model)
        self.connection = connections[alias]
        pk = model._meta.pk
        if pk is None or isinstance(pk, models.CompositePrimaryKey):
            raise BackupError(f"cannot dump {self.label}: composite primary keys are not supported")
        self.pk = pk
        self.fields = serialized_fields(model)
        self.names = tuple(f.name for f in self.fields)
        self.utc = bool(settings.USE_TZ) and self.connection.timezone_name == "UTC"
        pk_column = self._column(pk)
        self.pk_convert = pk_column.convert if pk_column is not None else None
        self.natural: list[tuple[int, _NaturalKeys]] = []
        # (position in the row, field name, types passed through as they are, converter)
        self.columns: list[tuple[int, str, frozenset[type], Callable[[Any], Any]]] = []
        for i, f in enumerate(self.fields, start=1):
            related = f.remote_field.model if f.remote_field is not None else None
            if related is not None and has_natural_key(related):
                keys = _NaturalKeys(related, alias, cast(Any, f).target_field.attname)
                self.natural.append((i, keys))
                self.columns.append((i, f.name, frozenset(), self._natural(keys)))
                continue
            column = self._column(f)
            if column is not None:
                self.columns.append((i, f.name, *column))
        self.m2m = [(f.name, self._m2m_reader(f)) for f in auto_m2m(model)]

    def _column(self, f: models.Field[Any, Any]) -> Column | None:
        return export_column(f, model=self.model, connection=self.connection, utc=self.utc)

    def _natural(self, keys: _NaturalKeys) -> Callable[[Any], Any]:
        label = self.label

        def natural(value: Any) -> Any:
            return keys.get(value, label=label, pk=None)

        return natural

    def _m2m_reader(self, f: models.ManyToManyField[Any, Any]) -> Callable[[list[Any]], dict[Any, list[Any]]]:
        through: Any = f.remote_field.through
        source = through._meta.get_field(f.m2m_field_name()).attname
        target = through._meta.get_field(f.m2m_reverse_field_name()).attname
        related = f.remote_field.model
        keys = None
        if has_natural_key(related):
            keys = _NaturalKeys(related, self.alias, related._meta.pk.attname)

        def read(pks: list[Any]) -> dict[Any, list[Any]]:
            pairs = list(
                through._base_manager.using(self.alias)
                .filter(**{f"{source}__in": pks})
                .values_list(source, target)
            )
            grouped: dict[Any, list[Any]] = {}
            if keys is not None:
                keys.prefetch(t for _, t in pairs)
                for s, t in pairs:
                    grouped.setdefault(s, []).append(keys.get(t, label=self.label, pk=s))
            else:
                for s, t in pairs:
                    grouped.setdefault(s, []).append(t)
            for values in grouped.values():
                values.sort()
            return grouped

        return read

    def chunks(self) -> Iterator[list[bytes]]:
        """The model's rows in primary-key order, CHUNK_SIZE lines at a time."""
        attnames = [self.pk.attname, *(f.attname for f in self.fields)]
        qs = self.model._base_manager.using(self.alias).order_by(self.pk.attname).values_list(*attnames)
        sql, params = qs.query.get_compiler(using=self.alias).as_sql()
        with self.connection.chunked_cursor() as cursor:
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(CHUNK_SIZE):
                yield self.lines(rows)

    def lines(self, rows: list[tuple[Any, ...]]) -> list[bytes]:
        for i, keys in self.natural:
            keys.prefetch(row[i] for row in rows)
        pk_convert = self.pk_convert
        pks = [row[0] if pk_convert is None else pk_convert(row[0]) for row in rows]
        m2m = [(name, read(pks)) for name, read in self.m2m]
        label, names, columns, dumps = self.label, self.names, self.columns, orjson.dumps
        option = orjson.OPT_NAIVE_UTC if self.utc else None
        out = []
        for pk, row in zip(pks, rows, strict=False):
            values = dict(zip(names, row[1:], strict=False))
            for i, name, passthrough, convert in columns:
                value = row[i]
                if value is None or type(value) in passthrough:
                    continue
                values[name] = convert(value)
            for name, grouped in m2m:
                values[name] = grouped.get(pk, [])
            out.append(
                dumps(
                    {"model": label, "pk": pk, "fields": values},
                    default=orjson_default,
                    option=option,
                )
            )
        return out


def _natural_primary_lines(model: type[models.Model], alias: str) -> list[bytes]:
    """The few rows of a NATURAL_PRIMARY model through Django's serializer, in natural-key order."""
    objs: list[Any] = list(with_foreign_keys(model._base_manager.using(alias)))
    objs.sort(key=lambda obj: obj.natural_key())
    data = serializers.serialize("python", objs, use_natural_foreign_keys=True, use_natural_primary_keys=True)
    for item in data:
        for name, value in item["fields"].items():
            if isinstance(value, list):
                value.sort()
            elif isinstance(value, tuple):
                item["fields"][name] = list(value)
    return [orjson.dumps(item, default=orjson_default) for item in data]


def _check_line_lengths(label: str, lines: list[bytes]) -> None:
    """A row the import could not read back (MAX_LINE) is refused now, not found at restore time."""
    longest = max(map(len, lines))
    if longest > MAX_LINE:
        raise BackupError(
            f"cannot dump {label}: one row is {longest:,} bytes of JSON, more than a dump line may "
            f"hold ({MAX_LINE:,}); rely on the database backup for this data"
        )


def _write_rows(
    sink: Any, *, alias: str, progress: Progress | None
) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Write every model's rows into ``sink``; call inside one read snapshot."""
    migrations = applied_migrations(alias)
    counts: dict[str, int] = {}
    model_list = dumped_models(alias=alias)
    labels = [model_label(m) for m in model_list]
    carriers = "contenttypes.contenttype" in labels
    sink = _HashedSink(sink)
    first = True
    sink.write(HEAD)
    if carriers:
        sink.write(header_record(alias=alias, labels=labels, migrations=migrations))
        first = False
    for model in model_list:
        label = model_label(model)
        total = model._base_manager.using(alias).count() if progress else 0
        if progress and total:
            progress(f"dumping {label} ({total:,} rows)")
        written = 0
        try:
            if label in NATURAL_PRIMARY:
                chunks: Iterator[list[bytes]] = iter([_natural_primary_lines(model, alias)])
            else:
                chunks = _ModelWriter(model, alias).chunks()
            for lines in chunks:
                if not lines:
                    continue
                _check_line_lengths(label, lines)
                sink.write((b"" if first else SEP) + SEP.join(lines))
                first = False
                before, written = written, written + len(lines)
                if (
                    progress
                    and total >= 2 * PROGRESS_EVERY
                    and (written // PROGRESS_EVERY > before // PROGRESS_EVERY)
                ):
                    progress(f"  {label}: {written:,}/{total:,} rows")
        except DatabaseError as exc:
            raise BackupError(
                f"JSON dump failed reading {label} ({exc}); the database was not changed. "
                "Run migrate if its table is missing"
            ) from exc
        counts[label] = written
    if carriers:
        # The hash covers every decoded byte before this record: a copy of the dump alone can
        # be checked (and a truncated one refused) without its sidecar manifest.
        sink.write(SEP)
        sink.write(end_record(rows=counts, sha256=sink.sha256.hexdigest()))
    sink.write(EMPTY_TAIL if first else TAIL)
    return counts, migrations


class _HashedSink:
    """Passes bytes on and hashes them (the end record's ``sha256``)."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.sha256.update(data)
        self.target.write(data)


class _BackgroundSink:
    """Hands chunks to a thread that writes them (hashing and compressing release the GIL), so
    encoding overlaps with reading rows; at most ``depth`` chunks wait, so memory stays flat."""

    def __init__(self, target: Any, depth: int = 8) -> None:
        self.target = target
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="safemigrate-json-writer")

    def _run(self) -> None:
        while (data := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.target.write(data)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    self.error = exc

    def write(self, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(data)

    def __enter__(self) -> _BackgroundSink:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None and exc_info[0] is None:
            raise self.error


def create_json_dump(
    *,
    alias: str = "default",
    backup: Manifest | None = None,
    progress: Progress | None = None,
    reason: str = "json",
) -> JsonDumpResult:
    """Write a portable, verified JSON dump of database ``alias`` into its backup folder.

    With ``backup``, the dump is named after that backup and listed in its manifest
    (``json_dump``); otherwise it is named ``backup-<reason>-<UTC time>-<alias>.json…``. Either way
    a sidecar ``….dump-manifest.json`` holds what ``load_json_dump`` checks. The database is never
    changed; a failure leaves no file behind.
    """
    with migration_lock(alias=alias):
        return _create_json_dump(alias=alias, backup=backup, progress=progress, reason=reason)


def _create_json_dump(
    *, alias: str, backup: Manifest | None, progress: Progress | None, reason: str
) -> JsonDumpResult:
    conf = get_settings()
    started = time.monotonic()
    adapter = get_adapter(alias)
    directory = ensure_backup_dir(alias)
    now = dt.datetime.now(dt.UTC)
    suffix = "json" + file_suffix(conf.compress, bool(conf.encryption_key))
    with RunFiles(directory) as run:
        if backup is not None:
            stem = backup.file.rsplit(f"-{backup.database}.", 1)[0]
            name = f"{stem}-{alias}.{suffix}"
            try:
                fd = create_exclusive(partial_path(directory, name), created=run.created)
            except FileExistsError as exc:
                raise BackupError(
                    f"a JSON dump of {backup.name} is already being written; wait for it to finish"
                ) from exc
        else:
            name, fd = run.reserve(reason=reason, alias=alias, extension=suffix, when=now)
        final = run.target = directory / name
        partial = partial_path(directory, name)
        sidecar = dump_manifest_path(final)
        if progress:
            progress(f"writing a JSON dump of {adapter.database_name()} to {final}")
        with os.fdopen(fd, "wb") as f:
            writer = BackupWriter(f, compression=conf.compress, key=conf.encryption_key)
            with adapter.read_snapshot(), _BackgroundSink(writer) as sink:
                counts, migrations = _write_rows(sink, alias=alias, progress=progress)
            stats = writer.finish()
        if progress:
            progress("reading the dump back to verify it")
        verify_encoded_file(
            partial,
            compression=conf.compress,
            encrypted=bool(conf.encryption_key),
            key=conf.encryption_key,
            name=name,
            sha256=stats.sha256,
            raw_sha256=stats.raw_sha256,
        )
        run.created.append(final)
        partial.replace(final)
        result = JsonDumpResult(
            path=final,
            manifest_path=sidecar,
            sha256=stats.sha256,
            size=stats.size,
            raw_size=stats.raw_size,
            raw_sha256=stats.raw_sha256,
            compression=conf.compress,
            encryption="aes-256-gcm" if conf.encryption_key else None,
            created=now.isoformat(timespec="microseconds"),
            database=alias,
            vendor=adapter.vendor,
            models=counts,
            migrations=migrations,
            duration=time.monotonic() - started,
        )
        run.created.append(sidecar)
        atomic_write(sidecar, sidecar_bytes(result, adapter.database_name(), backup, reason))
        fsync_dir(directory)
    if backup is not None:
        updated = update_manifest(backup, json_dump=result.as_json())
        catalogue.record(updated)
        result = dataclasses.replace(result, backup=updated)
    logger.info("JSON dump %s: %s rows, %s bytes, %.2fs", name, result.rows, result.size, result.duration)
    return result
