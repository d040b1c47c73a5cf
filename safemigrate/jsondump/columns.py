"""The column codec: how one field's values go out to JSON (export) and back in (import).

Both directions share the field types whose values pass as they are, and one memo for values that
repeat (decimals, booleans), so the fast paths of export and import cannot drift apart.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any, NamedTuple, cast
from uuid import UUID

from django.db import models
from django.utils.duration import duration_string

from safemigrate.jsondump.selection import has_natural_key

# Values orjson writes as Django's serializer does (is_protected_type, plus str and UUID).
PLAIN = (type(None), bool, int, float, str, Decimal, dt.date, dt.datetime, dt.time, UUID)
INTEGERS = frozenset({
    "AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField",
    "SmallIntegerField", "PositiveIntegerField", "PositiveBigIntegerField",
    "PositiveSmallIntegerField",
})  # fmt: skip
TEXTS = frozenset({"CharField", "TextField", "SlugField", "EmailField", "URLField", "FilePathField"})
# Internal types whose Python values orjson (or orjson_default) writes as Django's serializer does.
NATIVE = INTEGERS | TEXTS | {
    "BooleanField", "NullBooleanField", "FloatField", "DecimalField", "DateField",
    "DateTimeField", "TimeField", "DurationField", "UUIDField", "BinaryField", "JSONField",
    "GenericIPAddressField", "IPAddressField", "FileField", "ImageField",
}  # fmt: skip
MEMO_LIMIT = 65_536
"""Converted values remembered per column; the memo is emptied when it is full."""

Convert = Callable[[Any], Any]
NaturalResolver = Callable[[type[models.Model], list[Any]], Any]


class Column(NamedTuple):
    """One column: values of a ``passthrough`` type (and None) go as they are, others through
    ``convert``."""

    passthrough: frozenset[type]
    convert: Convert


def memoised(convert: Convert) -> Convert:
    """``convert`` remembering its results (values that repeat, like prices and flags).

    Falsy values are converted every time: 0, 0.0, -0.0 and False are equal keys.
    """
    memo: dict[Any, Any] = {}

    def convert_memoised(value: Any) -> Any:
        if not value:
            return convert(value)
        result = memo.get(value)
        if result is None:
            if len(memo) >= MEMO_LIMIT:
                memo.clear()
            result = memo[value] = convert(value)
        return result

    return convert_memoised


def orjson_default(value: Any) -> Any:
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


def export_column(
    f: models.Field[Any, Any], *, model: type[models.Model], connection: Any, utc: bool
) -> Column | None:
    """How a value read from the database becomes a JSON value; None when it needs nothing.

    The converters a ``values_list`` would apply (Django's own), with shortcuts that give the same
    values faster: converted decimals and booleans are memoised, and with USE_TZ on a UTC
    connection a datetime the driver already returns skips the converter that only attaches UTC
    (orjson then writes it as UTC).
    """
    col = f.get_col(model._meta.db_table)
    django_converters = [
        *connection.ops.get_db_converters(col),
        *col.get_db_converters(connection),
    ]
    internal = f.get_internal_type()
    custom = internal not in NATIVE
    if not django_converters and not custom:
        return None

    def convert(value: Any) -> Any:
        for converter in django_converters:
            value = converter(value, col, connection)
        if isinstance(value, Decimal):
            return str(value)
        if custom and not isinstance(value, PLAIN):
            return f.value_to_string(cast(Any, _Holder(f.attname, value)))
        return value

    if internal == "DateTimeField" and utc:
        return Column(frozenset({dt.datetime}), convert)
    if internal in ("DecimalField", "BooleanField"):
        return Column(frozenset(), memoised(convert))
    return Column(frozenset(), convert)


def import_column(
    f: models.Field[Any, Any],
    *,
    connection: Any,
    utc: bool,
    resolve: NaturalResolver,
    natural_of: type[models.Model] | None = None,
) -> Column:
    """How a JSON value becomes a query parameter: the field's ``get_db_prep_save`` (never
    ``pre_save``), with shortcuts that give the same parameters faster.

    Integers, strings and booleans of the right type pass as they are, decimals are memoised, and
    with USE_TZ on a UTC connection a UTC datetime is passed naive, which every backend stores as
    that UTC time. A foreign key to a model with natural keys also takes that key (``resolve``).
    """
    if f.remote_field is not None and natural_of is None:
        related = f.remote_field.model
        return import_column(
            cast(Any, f).target_field,
            connection=connection,
            utc=utc,
            resolve=resolve,
            natural_of=related if has_natural_key(related) else None,
        )
    ops = connection.ops

    def prep(value: Any) -> Any:
        return f.get_db_prep_save(f.to_python(value), connection)

    internal = f.get_internal_type()
    passthrough: frozenset[type] = frozenset()
    convert: Convert = prep
    if internal in INTEGERS:
        passthrough = frozenset({int})
    elif internal in TEXTS:
        passthrough = frozenset({str})
    elif internal == "BooleanField":
        passthrough = frozenset({bool})
    elif internal == "DecimalField":
        convert = memoised(prep)
    elif internal == "JSONField":

        def convert(value: Any) -> Any:
            return f.get_db_prep_save(value, connection)

    elif internal == "DateTimeField" and utc:

        def convert(value: Any) -> Any:
            if type(value) is str and value.endswith(("+00:00", "Z")):
                cut = -1 if value[-1] == "Z" else -6
                return ops.adapt_datetimefield_value(dt.datetime.fromisoformat(value[:cut]))
            return prep(value)

    elif internal == "DateField":

        def convert(value: Any) -> Any:
            return ops.adapt_datefield_value(dt.date.fromisoformat(value))

    if natural_of is not None:
        model, plain = natural_of, convert

        def convert(value: Any) -> Any:
            if isinstance(value, list):
                return resolve(model, value)
            return plain(value)

    return Column(passthrough, convert)
