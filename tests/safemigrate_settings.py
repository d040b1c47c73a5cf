"""Minimal settings for safemigrate's own tests: the app, the admin and a tiny test app, no fitnessdb.

Used by the Django-version matrix (scripts/ci_matrix.sh) against an installed safemigrate:
``pytest -p no:cacheprovider --ds tests.safemigrate_settings tests/safemigrate``. django-q2 is added
when it is installed (the ``tasks`` extra); without it the app runs its follow-up work inline.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

SECRET_KEY = "safemigrate-tests-only"  # noqa: S105
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "safemigrate",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "tests.migrapp",
]
HAS_DJANGO_Q = importlib.util.find_spec("django_q") is not None
if HAS_DJANGO_Q:
    INSTALLED_APPS.append("django_q")
    # django-q2's Conf is frozen at import: tasks run inline in tests.
    Q_CLUSTER = {
        "name": "safemigrate-tests",
        "orm": "default",
        "sync": True,
        "timeout": 600,
        "retry": 700,
        "log_level": "WARNING",
    }

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.safemigrate_urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# A real file (WAL, locks, the backup API on a file), not :memory:.
_db = Path(tempfile.gettempdir()) / f"safemigrate-tests-{os.getpid()}.sqlite3"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(_db),
        "TEST": {"NAME": str(_db.with_suffix(".test.sqlite3"))},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
STATIC_URL = "static/"
LOGIN_URL = "admin:login"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test users
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
