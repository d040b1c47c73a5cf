"""Vendor adapters, chosen by ``connection.vendor``."""

from __future__ import annotations

import importlib

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from safemigrate.exceptions import UnsupportedOperation
from safemigrate.vendors.base import VendorAdapter

_MODULES = {
    "sqlite": "safemigrate.vendors.sqlite",
    "postgresql": "safemigrate.vendors.postgresql",
    "mysql": "safemigrate.vendors.mysql",
}
_cache: dict[int, VendorAdapter] = {}


def get_adapter(connection: BaseDatabaseWrapper | str) -> VendorAdapter:
    """The adapter for a connection (or alias); one per connection object, so locks are shared."""
    if isinstance(connection, str):
        connection = connections[connection]
    key = id(connection)
    adapter = _cache.get(key)
    if adapter is None or adapter.connection is not connection:
        module_name = _MODULES.get(connection.vendor)
        if module_name is None:
            raise UnsupportedOperation(
                f"database vendor {connection.vendor!r} ({connection.alias}) is not supported; "
                "safemigrate supports sqlite, postgresql and mysql"
            )
        module = importlib.import_module(module_name)
        adapter = module.Adapter(connection)
        _cache[key] = adapter
    return adapter
