"""The engine's DatabaseWrapper (Django loads ``<ENGINE>.base.DatabaseWrapper``)."""

from __future__ import annotations

from django.db.backends.sqlite3 import base


class DatabaseWrapper(base.DatabaseWrapper):
    vendor = "wrapped"
