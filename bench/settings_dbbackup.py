"""The project's settings plus django-dbbackup, for bench/bench_dbbackup.py only.

Both tools run with these settings, side by side on the same database: safemigrate's ``backup``
and dbbackup's plain ``dbbackup`` (its defaults: SQLite connector, no compression, no
encryption), writing into ``BENCH_DBBACKUP_DIR``.
"""

from __future__ import annotations

import os

from fitnessdb.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "dbbackup"]  # noqa: F405
STORAGES = {
    **STORAGES,  # noqa: F405
    "dbbackup": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": os.environ["BENCH_DBBACKUP_DIR"]},
    },
}
DBBACKUP_SEND_EMAIL = False
