"""Portable JSON dumps: every installed model out in Django's serialization format, and back in.

Export streams each model in primary-key order from a chunked ``values_list().iterator()`` through
orjson into the backup codec (compression, checksum, optional encryption), inside one read snapshot,
so memory stays flat and the same data gives the same bytes. The file is the JSON array that
``loaddata`` reads, written one object per line, which lets the import stream it back line by line.

Import checks the dump (manifest, checksum, models, migrations) before it touches anything, then
inserts in batches inside one transaction with foreign-key checks deferred to the end: all or
nothing. Rows go in through each field's own ``get_db_prep_save`` without ``pre_save`` (as
``loaddata``'s raw saves do), so ``auto_now`` values and primary keys arrive exactly; no model
signals are sent.

Natural keys follow ``dumpdata --natural-foreign``: a reference to a model that defines
``natural_key()`` is written as that key. ``contenttypes.contenttype`` and ``auth.permission``,
whose rows ``migrate`` creates in every database with its own ids, also use natural primary keys
(``--natural-primary``) and are merged on import; every other model keeps its primary keys.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import django
import orjson
from django.apps import apps
from django.conf import settings
from django.core import serializers
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.core.management.color import no_style
from django.db import DatabaseError, connections, models, router, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
from django.utils.duration import duration_string

import safemigrate
from safemigrate import catalogue
from safemigrate.backup import (
    BackupResult,
    _cleanup,
    _os_error_message,
    create_backup,
    ensure_backup_dir,
)
from safemigrate.codec import (
    CHUNK,
    BackupReader,
    BackupWriter,
    detect_format,
    file_sha256,
    file_suffix,
    fsync_dir,
    mac_of,
    verify_encoded_file,
)
from safemigrate.conf import get_settings
from safemigrate.exceptions import (
    BackupError,
    ChecksumMismatch,
    IntegrityCheckFailed,
    RestoreError,
    SafeMigrateError,
)
from safemigrate.lock import migration_lock
from safemigrate.manifest import (
    Manifest,
    _atomic_write,
    clean_reason,
    create_exclusive,
    manifest_path_for,
    partial_path,
    read_json_file,
    reserve_backup_name,
    update_manifest,
)
from safemigrate.vendors import get_adapter
from safemigrate.vendors.base import Progress

logger = logging.getLogger("safemigrate")

FORMAT = "safemigrate-json-dump"
FORMAT_VERSION = 2
"""2: the dump describes itself (a header and an end record inside the file, see ``_carrier``)."""
CARRIER_KEY = "safemigrate_dump"
DUMP_MANIFEST_SUFFIX = ".dump-manifest.json"
CHUNK_SIZE = 2000
"""Rows read per fetch on export and inserted per batch on import."""
PROGRESS_EVERY = 200_000
_MAX_LINE = 64 << 20
"""Bytes a dump's header is read up to: a file without one in its first lines is refused."""
EXCLUDED_APPS = frozenset({"django_q", "safemigrate", "sessions"})
"""Installation state, not data: django-q2's queue, task results and schedules (re-registered from
settings), and safemigrate's own catalogue and run log (rebuilt from the backup folder); and
sessions, which are logins: whoever reads a dump must not be able to replay one."""
NATURAL_PRIMARY = frozenset({"contenttypes.contenttype", "auth.permission"})
"""Models whose rows ``migrate`` creates in every database with its own ids: dumped without primary
keys and merged on import by natural key, like ``dumpdata --natural-primary``."""

# Values orjson writes as Django's serializer does (is_protected_type, plus str and UUID).
_PLAIN = (type(None), bool, int, float, str, Decimal, dt.date, dt.datetime, dt.time, UUID)
_HEAD, _SEP, _TAIL, _EMPTY_TAIL = b"[\n", b",\n", b"\n]\n", b"]\n"
_INTEGERS = frozenset({
    "AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField",
    "SmallIntegerField", "PositiveIntegerField", "PositiveBigIntegerField",
    "PositiveSmallIntegerField",
})  # fmt: skip
_TEXTS = frozenset({"CharField", "TextField", "SlugField", "EmailField", "URLField", "FilePathField"})
# Internal types whose Python values orjson (or _orjson_default) writes as Django's serializer does.
_NATIVE = _INTEGERS | _TEXTS | {
    "BooleanField", "NullBooleanField", "FloatField", "DecimalField", "DateField",
    "DateTimeField", "TimeField", "DurationField", "UUIDField", "BinaryField", "JSONField",
    "GenericIPAddressField", "IPAddressField", "FileField", "ImageField",
}  # fmt: skip


@dataclass(frozen=True)
class JsonDumpResult:
    """A written dump: its file, checksums, rows per model and the migrations it was made at."""

    path: Path
    manifest_path: Path
    sha256: str
    size: int
    raw_size: int
    raw_sha256: str
    compression: str
    encryption: str | None
    created: str
    database: str
    vendor: str
    models: dict[str, int]
    migrations: dict[str, list[str]]
    duration: float
    backup: Manifest | None = None
    """The backup's manifest, updated with ``json_dump``, when the dump was made for a backup."""

    @property
    def rows(self) -> int:
        return sum(self.models.values())

    def as_json(self) -> dict[str, Any]:
        """What the backup manifest's ``json_dump`` field and ``backup --format json`` hold."""
        return {
            "file": self.path.name,
            "path": str(self.path),
            "sha256": self.sha256,
            "size": self.size,
            "raw_size": self.raw_size,
            "compression": self.compression,
            "encryption": self.encryption,
            "created": self.created,
            "rows": self.rows,
            "models": self.models,
            "migrations": self.migrations,
            "duration": round(self.duration, 3),
        }


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


# --- which models, in which order ---------------------------------------------------------------
def dumped_models(*, alias: str = "default") -> list[type[models.Model]]:
    """Every model a dump holds, parents before the models that refer to them.

    Concrete, managed, non-proxy models that the router lets live in ``alias``, minus
    ``EXCLUDED_APPS``. Ordered like ``serializers.sort_dependencies`` (natural-key dependencies
    first) and, beyond it, by every foreign key and many-to-many relation; cycles and
    self-references are broken in app order, which is harmless because foreign keys are checked
    at the end of the load.
    """
    candidates = [
        model
        for app_config in apps.get_app_configs()
        if app_config.label not in EXCLUDED_APPS
        for model in app_config.get_models()
        if model._meta.managed
        and not model._meta.proxy
        and not model._meta.swapped
        and router.allow_migrate_model(alias, model)
    ]
    included = set(candidates)
    deps: dict[type[models.Model], set[type[models.Model]]] = {m: set() for m in candidates}
    for model in candidates:
        for label in getattr(getattr(model, "natural_key", None), "dependencies", ()):
            try:
                deps[model].add(apps.get_model(label))
            except LookupError:  # a dependency on an app that is not installed here
                continue
        for f in [*model._meta.local_fields, *model._meta.local_many_to_many]:
            if f.remote_field is not None:
                deps[model].add(_concrete(f.remote_field.model))
        deps[model] = {d for d in deps[model] if d in included and d is not model}
    ordered: list[type[models.Model]] = []
    done: set[type[models.Model]] = set()
    remaining = list(candidates)
    while remaining:
        ready = next((m for m in remaining if deps[m] <= done), remaining[0])
        ordered.append(ready)
        done.add(ready)
        remaining.remove(ready)
    return ordered


def _label(model: type[models.Model]) -> str:
    return model._meta.label_lower


def _with_foreign_keys(qs: models.QuerySet[Any]) -> models.QuerySet[Any]:
    """``qs`` joined to its non-null foreign keys, which natural keys usually read.

    What ``select_related()`` without arguments did; Django 6.1 deprecates that form.
    """
    names = [f.name for f in qs.model._meta.concrete_fields if f.many_to_one and not f.null]
    return qs.select_related(*names) if names else qs


def _concrete(model: type[models.Model]) -> type[models.Model]:
    """The model whose table holds the rows (itself, unless it is a proxy)."""
    return model._meta.concrete_model or model


def _serialized_fields(model: type[models.Model]) -> list[models.Field[Any, Any]]:
    """The columns a row carries under "fields", as Django's serializer chooses them."""
    fields: list[Any] = _concrete(model)._meta.local_fields
    return [f for f in fields if f.serialize and not getattr(f, "generated", False)]


def _auto_m2m(model: type[models.Model]) -> list[models.ManyToManyField[Any, Any]]:
    """Many-to-many fields stored with the row (auto-created through tables only)."""
    fields: list[Any] = _concrete(model)._meta.local_many_to_many
    return [f for f in fields if f.serialize and f.remote_field.through._meta.auto_created]


def _has_natural_key(model: type[models.Model]) -> bool:
    return hasattr(model, "natural_key")


def _applied_migrations(alias: str) -> dict[str, list[str]]:
    recorder = MigrationRecorder(connections[alias])
    if not recorder.has_table():
        return {}
    applied: dict[str, list[str]] = {}
    for app, name in recorder.migration_qs.order_by("app", "id").values_list("app", "name"):
        applied.setdefault(app, []).append(name)
    return applied


# --- export -----------------------------------------------------------------------------------
def _orjson_default(value: Any) -> Any:
    """The types orjson leaves to us, written as Django's serializer writes them."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.timedelta):
        return duration_string(value)
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"cannot write a {type(value).__name__} value to JSON")


class _Holder:
    """Stands in for a model instance so a field's ``value_to_string`` can read one value."""

    def __init__(self, attname: str, value: Any) -> None:
        setattr(self, attname, value)


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
        qs: Any = _with_foreign_keys(self.model._base_manager.using(self.alias))
        for obj in qs.filter(**{f"{self.to_field}__in": missing}):
            self.cache[getattr(obj, self.to_field)] = list(obj.natural_key())

    def get(self, value: Any, *, label: str, pk: Any) -> list[Any]:
        try:
            return self.cache[value]
        except KeyError:
            raise BackupError(
                f"cannot dump {label} pk={pk!r}: it refers to {_label(self.model)} {value!r}, "
                "which does not exist; the database breaks a foreign key (run verifybackup or "
                "fix the row)"
            ) from None


class _ModelWriter:
    """Turns rows of one model, read from a chunked cursor, into lines of Django's JSON format.

    Each column gets the converters a ``values_list`` would apply (Django's own), with shortcuts
    that give the same values faster: converted decimals and booleans are memoised (they repeat),
    and with USE_TZ on a UTC connection a datetime the driver already returns skips the converter
    that only attaches UTC (orjson then writes it as UTC).
    """

    MEMO_LIMIT = 65_536

    def __init__(self, model: type[models.Model], alias: str) -> None:
        self.model, self.alias, self.label = model, alias, _label(model)
        self.connection = connections[alias]
        pk = model._meta.pk
        if pk is None or isinstance(pk, models.CompositePrimaryKey):
            raise BackupError(f"cannot dump {self.label}: composite primary keys are not supported")
        self.pk = pk
        self.fields = _serialized_fields(model)
        self.names = tuple(f.name for f in self.fields)
        self.utc = bool(settings.USE_TZ) and self.connection.timezone_name == "UTC"
        self.pk_convert = self._column(pk)[2]
        self.natural: list[tuple[int, _NaturalKeys]] = []
        # (position in the row, field name, types passed through as they are, memo, converter)
        self.columns: list[tuple[int, str, frozenset[type], dict[Any, Any] | None, Callable[[Any], Any]]] = []
        for i, f in enumerate(self.fields, start=1):
            related = f.remote_field.model if f.remote_field is not None else None
            if related is not None and _has_natural_key(related):
                keys = _NaturalKeys(related, alias, cast(Any, f).target_field.attname)
                self.natural.append((i, keys))
                self.columns.append((i, f.name, frozenset(), None, self._natural(keys)))
                continue
            passthrough, memo, convert = self._column(f)
            if convert is not None:
                self.columns.append((i, f.name, passthrough, memo, convert))
        self.m2m = [(f.name, self._m2m_reader(f)) for f in _auto_m2m(model)]

    def _natural(self, keys: _NaturalKeys) -> Callable[[Any], Any]:
        label = self.label

        def natural(value: Any) -> Any:
            return keys.get(value, label=label, pk=None)

        return natural

    def _column(
        self, f: models.Field[Any, Any]
    ) -> tuple[frozenset[type], dict[Any, Any] | None, Callable[[Any], Any] | None]:
        """(types that need no conversion, memo, converter or None) for one column."""
        col = f.get_col(self.model._meta.db_table)
        connection = self.connection
        django_converters = [
            *connection.ops.get_db_converters(col),
            *col.get_db_converters(connection),
        ]
        internal = f.get_internal_type()
        custom = internal not in _NATIVE
        if not django_converters and not custom:
            return frozenset(), None, None

        def convert(value: Any) -> Any:
            for converter in django_converters:
                value = converter(value, col, connection)
            if isinstance(value, Decimal):
                return str(value)
            if custom and not isinstance(value, _PLAIN):
                return f.value_to_string(cast(Any, _Holder(f.attname, value)))
            return value

        if internal == "DateTimeField" and self.utc:
            return frozenset({dt.datetime}), None, convert
        if internal in ("DecimalField", "BooleanField"):
            return frozenset(), {}, convert
        return frozenset(), None, convert

    def _m2m_reader(self, f: models.ManyToManyField[Any, Any]) -> Callable[[list[Any]], dict[Any, list[Any]]]:
        through: Any = f.remote_field.through
        source = through._meta.get_field(f.m2m_field_name()).attname
        target = through._meta.get_field(f.m2m_reverse_field_name()).attname
        related = f.remote_field.model
        keys = (
            _NaturalKeys(related, self.alias, related._meta.pk.attname) if _has_natural_key(related) else None
        )

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
            for i, name, passthrough, memo, convert in columns:
                value = row[i]
                if value is None or type(value) in passthrough:
                    continue
                # Memoised columns: 0, 0.0 and -0.0 are equal keys, so falsy values skip the memo.
                if memo is not None and value:
                    result = memo.get(value)
                    if result is None:
                        if len(memo) >= self.MEMO_LIMIT:
                            memo.clear()
                        result = memo[value] = convert(value)
                    values[name] = result
                else:
                    values[name] = convert(value)
            for name, grouped in m2m:
                values[name] = grouped.get(pk, [])
            out.append(
                dumps(
                    {"model": label, "pk": pk, "fields": values},
                    default=_orjson_default,
                    option=option,
                )
            )
        return out


def _natural_primary_lines(model: type[models.Model], alias: str) -> list[bytes]:
    """The few rows of a NATURAL_PRIMARY model through Django's serializer, in natural-key order."""
    objs: list[Any] = list(_with_foreign_keys(model._base_manager.using(alias)))
    objs.sort(key=lambda obj: obj.natural_key())
    data = serializers.serialize("python", objs, use_natural_foreign_keys=True, use_natural_primary_keys=True)
    for item in data:
        for name, value in item["fields"].items():
            if isinstance(value, list):
                value.sort()
            elif isinstance(value, tuple):
                item["fields"][name] = list(value)
    return [orjson.dumps(item, default=_orjson_default) for item in data]


def _write_rows(
    sink: Any, *, alias: str, progress: Progress | None
) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Write every model's rows into ``sink``; call inside one read snapshot."""
    migrations = _applied_migrations(alias)
    counts: dict[str, int] = {}
    model_list = dumped_models(alias=alias)
    carriers = "contenttypes.contenttype" in {_label(m) for m in model_list}
    sink = _HashedSink(sink)
    first = True
    sink.write(_HEAD)
    if carriers:
        header = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "database": alias,
            "app_version": safemigrate.__version__,
            "django_version": django.get_version(),
            "models": [_label(m) for m in model_list],
            "migrations": migrations,
        }
        sink.write(_carrier("backup", {"part": "header", **header}))
        first = False
    for model in model_list:
        label = _label(model)
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
                sink.write((b"" if first else _SEP) + _SEP.join(lines))
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
        sink.write(_SEP)
        end = {"part": "end", "rows": counts, "sha256": sink.sha256.hexdigest()}
        sink.write(_carrier("migrationrun", end))
    sink.write(_EMPTY_TAIL if first else _TAIL)
    return counts, migrations


def _carrier(model: str, info: dict[str, Any]) -> bytes:
    """A self-description record that ``loaddata`` reads as a plain fixture object.

    It is the content type of one of safemigrate's own models (which ``migrate`` creates in every
    database that has safemigrate, so ``loaddata`` merges it by natural key and changes nothing),
    with the description in an extra top-level key that Django's deserializer ignores. Our import
    reads the description and loads no row from it.
    """
    obj = {
        "model": "contenttypes.contenttype",
        "fields": {"app_label": "safemigrate", "model": model},
        CARRIER_KEY: info,
    }
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


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


def dump_manifest_path(path: Path) -> Path:
    """``<dump file>.dump-manifest.json``, the sidecar that ``load_json_dump`` checks."""
    return path.with_name(path.name + DUMP_MANIFEST_SUFFIX)


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
    created: list[Path] = []  # a failure removes this run's own files, never another run's
    final = directory
    try:
        if backup is not None:
            stem = backup.file.rsplit(f"-{backup.database}.", 1)[0]
            name = f"{stem}-{alias}.{suffix}"
            try:
                fd = create_exclusive(partial_path(directory, name), created=created)
            except FileExistsError as exc:
                raise BackupError(
                    f"a JSON dump of {backup.name} is already being written; wait for it to finish"
                ) from exc
        else:
            name, fd = reserve_backup_name(
                reason=reason, alias=alias, extension=suffix, directory=directory, when=now, created=created
            )
        final = directory / name
        partial = partial_path(directory, name)
        sidecar = dump_manifest_path(final)
        if progress:
            progress(f"writing a JSON dump of {adapter.database_name()} to {final}")
        with os.fdopen(fd, "wb") as f:
            writer = BackupWriter(
                f, compression=conf.compress, level=conf.compress_level, key=conf.encryption_key
            )
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
        created.append(final)
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
        created.append(sidecar)
        _atomic_write(sidecar, _sidecar_bytes(result, adapter.database_name(), backup, reason))
        fsync_dir(directory)
    except OSError as exc:
        _cleanup(*created)
        raise BackupError(_os_error_message(exc, final)) from exc
    except BaseException:
        _cleanup(*created)
        raise
    if backup is not None:
        updated = update_manifest(backup, json_dump=result.as_json())
        catalogue.record(updated)
        result = dataclasses.replace(result, backup=updated)
    logger.info("JSON dump %s: %s rows, %s bytes, %.2fs", name, result.rows, result.size, result.duration)
    return result


def _sidecar_bytes(result: JsonDumpResult, database_name: str, backup: Manifest | None, reason: str) -> bytes:
    data = {
        **result.as_json(),
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "raw_sha256": result.raw_sha256,
        "database": result.database,
        "database_name": database_name,
        "vendor": result.vendor,
        "reason": backup.reason if backup else clean_reason(reason),
        "backup": backup.name if backup else None,
        "app_version": safemigrate.__version__,
        "django_version": django.get_version(),
    }
    data.pop("path")
    key = get_settings().encryption_key
    if key:  # authenticated like a backup manifest: no swapped, edited or renamed dump is loaded
        data["mac"] = mac_of(data, key)
    return json.dumps(data, indent=2, sort_keys=True).encode()


# --- import -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _DumpInfo:
    """What the import checks: the sidecar manifest's fields, or the dump's own header."""

    path: Path
    sha256: str | None
    """Of the stored file; None when only the header inside the file is known."""
    size: int | None
    compression: str
    encryption: str | None
    models: dict[str, int]
    """Rows per model; the counts are -1 when only the header is known (the end record has them)."""
    migrations: dict[str, list[str]]


def read_dump_manifest(path: Path) -> _DumpInfo:
    """What to check the dump at ``path`` against: its sidecar manifest, else its own header.

    A clear RestoreError when neither is there (a dump made before format 2 copied without its
    sidecar) or the file is no dump at all.
    """
    sidecar = dump_manifest_path(path)
    if not path.is_file():
        raise RestoreError(f"no JSON dump at {path}")
    try:
        data = read_json_file(sidecar)
    except FileNotFoundError:
        return _read_dump_header(path)
    except (OSError, ValueError) as exc:
        raise RestoreError(f"{sidecar} is not a safemigrate dump manifest ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RestoreError(f"{sidecar} is not a safemigrate JSON dump manifest")
    _check_dump_authenticated(path, data)
    if data.get("version", 0) > FORMAT_VERSION:
        raise RestoreError(
            f"{path.name} is dump format {data['version']}, newer than this code reads "
            f"({FORMAT_VERSION}); load it with the safemigrate version that made it"
        )
    try:
        return _DumpInfo(
            path=path,
            sha256=str(data["sha256"]),
            size=int(data["size"]),
            compression=str(data["compression"]),
            encryption=data.get("encryption"),
            models={str(k): int(v) for k, v in data["models"].items()},
            migrations={str(k): list(v) for k, v in data.get("migrations", {}).items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RestoreError(f"{sidecar} is not a complete dump manifest (missing {exc})") from exc


def _dump_compression(path: Path) -> tuple[str, bool]:
    """(compression, encrypted) of a dump from its name (``….json.zst.enc``), else its first bytes."""
    name = path.name.lower()
    encrypted = name.endswith(".enc")
    stem = name.removesuffix(".enc")
    for compression in ("zstd", "gzip", "none"):
        if stem.endswith("json" + file_suffix(compression, False)):
            return compression, encrypted
    compression, encrypted = detect_format(path)
    if encrypted:
        raise RestoreError(
            f"{path.name}: cannot tell how this encrypted dump is compressed from its name; give it "
            "its original name (….json.zst.enc, ….json.gz.enc or ….json.enc)"
        )
    return compression, False


def _read_dump_header(path: Path) -> _DumpInfo:
    """The header record inside a format-2 dump (the dump was copied without its sidecar)."""
    if manifest_path_for(path).is_file() or ".json" not in path.name.lower():
        raise RestoreError(
            f"{path.name} is a database backup, not a JSON dump: restore it with "
            f"`manage.py restore --file {path}` (or by its name); restore --json takes a ….json… dump"
        )
    compression, encrypted = _dump_compression(path)
    if get_settings().encryption_key and not encrypted:
        # Without the authenticated sidecar only AES-GCM vouches for the content.
        raise RestoreError(
            f"{path.name} is not encrypted but SAFEMIGRATE_ENCRYPTION_KEY is set, and it has no "
            "authenticated dump manifest beside it; it was not loaded and the database was not changed"
        )
    with path.open("rb") as f:
        reader = BackupReader(
            f, compression=compression, encrypted=encrypted, key=get_settings().encryption_key, name=path.name
        )
        head = b""
        while head.count(b"\n") < 2 and len(head) < _MAX_LINE:
            chunk = reader.read(64 * 1024)
            if not chunk:
                break
            head += chunk
    lines = head.split(b"\n")
    header: Any = None
    if len(lines) > 2 and lines[0].strip() == b"[":
        try:
            header = orjson.loads(lines[1].rstrip(b","))
        except orjson.JSONDecodeError:
            header = None
    info = header.get(CARRIER_KEY) if isinstance(header, dict) else None
    if not isinstance(info, dict) or info.get("part") != "header" or info.get("format") != FORMAT:
        raise RestoreError(
            f"{path.name} has no dump manifest beside it ({dump_manifest_path(path).name}) and does "
            "not describe itself (made before safemigrate wrote format 2, or not a safemigrate dump); "
            "copy the manifest with the dump"
        )
    if not isinstance(info.get("version"), int) or info["version"] > FORMAT_VERSION:
        raise RestoreError(
            f"{path.name} is dump format {info.get('version')!r}, newer than this code reads "
            f"({FORMAT_VERSION}); load it with the safemigrate version that made it"
        )
    labels, migrations = info.get("models"), info.get("migrations")
    if not (
        isinstance(labels, list)
        and all(isinstance(label, str) for label in labels)
        and isinstance(migrations, dict)
        and all(isinstance(k, str) and isinstance(v, list) for k, v in migrations.items())
        and all(isinstance(n, str) for v in migrations.values() for n in v)
    ):
        raise RestoreError(f"{path.name}: its header is damaged (models or migrations); use another dump")
    return _DumpInfo(
        path=path,
        sha256=None,
        size=None,
        compression=compression,
        encryption="aes-256-gcm" if encrypted else None,
        models=dict.fromkeys(labels, -1),
        migrations={k: list(v) for k, v in migrations.items()},
    )


def _check_dump_authenticated(path: Path, data: dict[str, Any]) -> None:
    """With SAFEMIGRATE_ENCRYPTION_KEY set: only an encrypted dump whose sidecar carries our MAC
    and names this very file (see manifest.authentication_problem)."""
    key = get_settings().encryption_key
    if not key:
        return
    fields = {k: v for k, v in data.items() if k != "mac"}
    if not data.get("encryption"):
        problem = "is not encrypted but SAFEMIGRATE_ENCRYPTION_KEY is set"
    elif not isinstance(data.get("mac"), str) or not hmac.compare_digest(data["mac"], mac_of(fields, key)):
        problem = "has a dump manifest that fails its authentication (changed, or made with another key)"
    elif data.get("file") != path.name:
        problem = f"is named {path.name} but its dump manifest describes {data.get('file')}"
    else:
        return
    raise RestoreError(f"{path.name} {problem}; it was not loaded and the database was not changed")


def _check_file(info: _DumpInfo) -> None:
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


def _check_models(info: _DumpInfo, alias: str) -> list[type[models.Model]]:
    known = {_label(m): m for m in dumped_models(alias=alias)}
    unknown = sorted(set(info.models) - set(known))
    if unknown:
        shown = ", ".join(unknown[:5]) + (", …" if len(unknown) > 5 else "")
        raise RestoreError(
            f"{info.path.name} holds models this project does not have ({shown}): it was made by "
            "another project or by code with other apps; the database was not changed"
        )
    return list(known.values())


def _check_migrations(info: _DumpInfo, alias: str) -> None:
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
    here = _applied_migrations(alias)
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
        _label(m)
        for m in model_list
        if _label(m) not in NATURAL_PRIMARY and m._base_manager.using(alias).exists()
    ]


class _RowError(SafeMigrateError):
    """One row of the dump cannot be loaded; turned into a RestoreError naming it."""


_MISSING = object()


class _ModelLoader:
    """Converts the dump's rows of one model into parameters for one INSERT statement.

    Each value goes through its field's ``get_db_prep_save`` (never ``pre_save``), with shortcuts
    that give the same parameters faster: integers, strings and booleans of the right type pass
    as they are, decimals are memoised (they repeat), and with USE_TZ on a UTC connection a UTC
    datetime is passed naive, which every backend stores as that UTC time.
    """

    MEMO_LIMIT = 65_536

    def __init__(self, model: type[models.Model], alias: str, resolver: _NaturalResolver) -> None:
        self.connection = connections[alias]
        self.resolver = resolver
        self.model, self.label = model, _label(model)
        self.utc = bool(settings.USE_TZ) and self.connection.timezone_name == "UTC"
        opts = model._meta
        pk = opts.pk
        if pk is None or isinstance(pk, models.CompositePrimaryKey):
            raise RestoreError(f"cannot load {self.label}: composite primary keys are not supported")
        self.fields = _serialized_fields(model)
        self.known = {f.name for f in self.fields} | {f.name for f in _auto_m2m(model)}
        self.pk_column = self._column(pk)
        self.columns = [(f.name, *self._column(f)) for f in self.fields]
        self.defaults = {f.name: f for f in self.fields}
        qn = self.connection.ops.quote_name
        names = [pk.column, *(f.column for f in self.fields)]
        self.sql = (
            f"INSERT INTO {qn(opts.db_table)} ({', '.join(qn(c) for c in names)}) "  # noqa: S608
            f"VALUES ({', '.join(['%s'] * len(names))})"
        )
        self.m2m: list[tuple[str, str, tuple[frozenset[type], Any, Callable[[Any], Any]]]] = []
        for f in _auto_m2m(model):
            through_model: Any = f.remote_field.through
            through = through_model._meta
            sql = (
                f"INSERT INTO {qn(through.db_table)} "  # noqa: S608
                f"({qn(f.m2m_column_name())}, {qn(f.m2m_reverse_name())}) VALUES (%s, %s)"
            )
            target = f.remote_field.model
            self.m2m.append((f.name, sql, self._column(target._meta.pk, natural_of=target)))
        self.width = len(self.fields) + len(self.m2m)

    def _column(
        self, f: models.Field[Any, Any], *, natural_of: type[models.Model] | None = None
    ) -> tuple[frozenset[type], dict[Any, Any] | None, Callable[[Any], Any]]:
        """(types passed as they are, memo or None, converter) for one column."""
        if f.remote_field is not None and natural_of is None:
            related = f.remote_field.model
            return self._column(
                cast(Any, f).target_field, natural_of=related if _has_natural_key(related) else None
            )
        connection, ops = self.connection, self.connection.ops

        def prep(value: Any) -> Any:
            return f.get_db_prep_save(f.to_python(value), connection)

        internal = f.get_internal_type()
        passthrough: frozenset[type] = frozenset()
        memo: dict[Any, Any] | None = None
        convert: Callable[[Any], Any] = prep
        if internal in _INTEGERS:
            passthrough = frozenset({int})
        elif internal in _TEXTS:
            passthrough = frozenset({str})
        elif internal == "BooleanField":
            passthrough = frozenset({bool})
        elif internal == "DecimalField":
            memo = {}
        elif internal == "JSONField":

            def convert(value: Any) -> Any:
                return f.get_db_prep_save(value, connection)

        elif internal == "DateTimeField" and self.utc:

            def convert(value: Any) -> Any:
                if type(value) is str and value.endswith(("+00:00", "Z")):
                    cut = -1 if value[-1] == "Z" else -6
                    return ops.adapt_datetimefield_value(dt.datetime.fromisoformat(value[:cut]))
                return prep(value)

        elif internal == "DateField":

            def convert(value: Any) -> Any:
                return ops.adapt_datefield_value(dt.date.fromisoformat(value))

        if natural_of is not None:
            model, resolver, plain = natural_of, self.resolver, convert

            def convert(value: Any) -> Any:
                if isinstance(value, list):
                    return resolver(model, value)
                return plain(value)

        return passthrough, memo, convert

    def row(self, obj: dict[str, Any]) -> tuple[list[Any], list[tuple[str, list[Any]]]]:
        """(row parameters, m2m (sql, pairs)) for one object of the dump."""
        fields = obj["fields"]
        if len(fields) != self.width:
            unknown = sorted(set(fields) - self.known)
            if unknown:
                raise _RowError(f"it has fields {self.label} does not have ({', '.join(unknown)})")
        passthrough, _, convert = self.pk_column
        pk = obj.get("pk")
        if pk is None:
            raise _RowError("it has no primary key (pk)")
        if type(pk) not in passthrough:
            pk = convert(pk)
        values = [pk]
        append, get = values.append, fields.get
        for name, passthrough, memo, convert in self.columns:
            value = get(name, _MISSING)
            if value is None or type(value) in passthrough:
                append(value)
            elif value is _MISSING:
                f = self.defaults[name]
                append(f.get_db_prep_save(f.get_default(), self.connection))
            elif memo is not None:
                result = memo.get(value)
                if result is None:
                    if len(memo) >= self.MEMO_LIMIT:
                        memo.clear()
                    result = memo[value] = convert(value)
                append(result)
            else:
                append(convert(value))
        m2m = []
        for name, sql, (passthrough, _, convert) in self.m2m:
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
                    f"it refers to {_label(model)} {key!r}, which is neither in the dump nor in the database"
                ) from exc
        return self.cache[cache_key]


def _lines(reader: BackupReader) -> Iterator[bytes]:
    """The decoded dump, line by line, reading a chunk at a time."""
    rest = b""
    while chunk := reader.read(CHUNK):
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        yield from parts
    if rest:
        yield rest


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
    _clear_caches()
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
    info: _DumpInfo,
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
            counts = importer.run(_lines(reader), cursor)
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
        loaded = [m for m in model_list if counts.get(_label(m))]
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
        self.models = {_label(m): m for m in model_list}
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
        """A header or end record (see ``_carrier``): checked, never loaded as a row."""
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
        if _label(model) in NATURAL_PRIMARY:
            continue
        for f in _auto_m2m(model):
            through: Any = f.remote_field.through
            cursor.execute(f"DELETE FROM {qn(through._meta.db_table)}")  # noqa: S608
        cursor.execute(f"DELETE FROM {qn(model._meta.db_table)}")  # noqa: S608


def _clear_caches() -> None:
    from django.contrib.contenttypes.models import ContentType

    try:
        ContentType.objects.clear_cache()
    except Exception:  # noqa: BLE001, S110 - contenttypes may not be installed
        pass
