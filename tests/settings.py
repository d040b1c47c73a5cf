"""Test settings: the project's settings, a file-backed test database, django-q2 in sync mode."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("DEBUG", "1")

from fitnessdb.settings import *  # noqa: E402, F403
from fitnessdb.settings import DATABASES, INSTALLED_APPS, Q_CLUSTER  # noqa: E402

# A real file (WAL, locks, backup API on a file), not :memory:.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"fitnessdb-test-{os.getpid()}.sqlite3")
    }
INSTALLED_APPS = [*INSTALLED_APPS, "tests.migrapp"]
# django-q2's Conf is frozen at import, so sync mode is set here (tasks run inline in tests).
Q_CLUSTER = {**Q_CLUSTER, "sync": True, "log_level": "WARNING"}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test users
# CI runs the suite a second time with SAFEMIGRATE_TEST_USE_TZ=0: many projects keep USE_TZ = False.
USE_TZ = os.environ.get("SAFEMIGRATE_TEST_USE_TZ", "1") != "0"
