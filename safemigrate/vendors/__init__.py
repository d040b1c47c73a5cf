"""Vendor adapters, chosen by the connection's ENGINE through a registry a setting extends.

As with Django's pluggable database backends, a dotted path names the class:
``SAFEMIGRATE_VENDOR_ADAPTERS`` maps an ENGINE to an adapter class, merged over ``ADAPTERS``. An
ENGINE in neither is matched by its ``connection.vendor`` (so PostGIS or a django-prometheus
wrapper gets the adapter of the engine it wraps); anything else is one error naming the setting.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.dispatch import receiver
from django.utils.module_loading import import_string

from safemigrate.exceptions import UnsupportedOperation
from safemigrate.vendors.base import VendorAdapter

SETTING = "SAFEMIGRATE_VENDOR_ADAPTERS"
ADAPTERS = {
    "django.db.backends.sqlite3": "safemigrate.vendors.sqlite.Adapter",
    "django.db.backends.postgresql": "safemigrate.vendors.postgresql.Adapter",
    "django.db.backends.mysql": "safemigrate.vendors.mysql.Adapter",
}
"""The built-in map: ENGINE -> adapter class."""
_BY_VENDOR = {
    "sqlite": ADAPTERS["django.db.backends.sqlite3"],
    "postgresql": ADAPTERS["django.db.backends.postgresql"],
    "mysql": ADAPTERS["django.db.backends.mysql"],
}
_cache: dict[int, VendorAdapter] = {}


def configured_adapters() -> dict[str, str]:
    """SAFEMIGRATE_VENDOR_ADAPTERS; UnsupportedOperation when it is not a map of dotted paths."""
    value = getattr(settings, SETTING, None) or {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise UnsupportedOperation(
            f"{SETTING} must map ENGINE dotted paths to adapter class dotted paths (strings), not {value!r}"
        )
    return dict(value)


def load_adapter_class(path: str, *, engine: str) -> type[VendorAdapter]:
    """The adapter class ``SAFEMIGRATE_VENDOR_ADAPTERS[engine]`` names; UnsupportedOperation if none."""
    hint = "give the dotted path of a VendorAdapter subclass, e.g. 'safemigrate.vendors.postgresql.Adapter'"
    try:
        found = import_string(path)
    except ImportError as exc:
        raise UnsupportedOperation(
            f"{SETTING}[{engine!r}] = {path!r} cannot be imported ({exc}); {hint}"
        ) from None
    if not (isinstance(found, type) and issubclass(found, VendorAdapter)) or inspect.isabstract(found):
        raise UnsupportedOperation(
            f"{SETTING}[{engine!r}] = {path!r} is not a concrete VendorAdapter subclass; {hint}"
        )
    return found


def adapter_class(connection: BaseDatabaseWrapper) -> type[VendorAdapter]:
    """The adapter class for ``connection``: its ENGINE in the setting, then built in, then its vendor."""
    engine = str(connection.settings_dict.get("ENGINE") or "")
    configured = configured_adapters()
    if engine in configured:
        return load_adapter_class(configured[engine], engine=engine)
    path = ADAPTERS.get(engine) or _BY_VENDOR.get(connection.vendor)
    if path is None:
        raise UnsupportedOperation(
            f"database {connection.alias!r} uses ENGINE {engine!r} (vendor {connection.vendor!r}), "
            "which has no safemigrate adapter (built in: SQLite, PostgreSQL, MariaDB/MySQL); map "
            f"it to an adapter class in {SETTING}"
        )
    adapter: type[VendorAdapter] = import_string(path)
    return adapter


def get_adapter(connection: BaseDatabaseWrapper | str) -> VendorAdapter:
    """The adapter for a connection (or alias); one per connection object, so locks are shared."""
    if isinstance(connection, str):
        connection = connections[connection]
    key = id(connection)
    adapter = _cache.get(key)
    if adapter is None or adapter.connection is not connection:
        adapter = adapter_class(connection)(connection)
        _cache[key] = adapter
    return adapter


@receiver(setting_changed)
def _forget_adapters(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTING:
        _cache.clear()
