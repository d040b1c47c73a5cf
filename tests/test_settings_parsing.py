"""Settings parsing: bad configuration is one clear line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_check(**env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY", "DEBUG")}
    base["DJANGO_SETTINGS_MODULE"] = "fitnessdb.settings"
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("url", ["nonsense", "foo://bar/baz", "postgres//missing-colon"])
def test_settings__bad_database_url(url):
    result = run_check(DATABASE_URL=url, SECRET_KEY="x")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "Configuration error: DATABASE_URL=" in result.stderr
    assert "is not a supported database URL" in result.stderr


def test_settings__password_not_echoed():
    result = run_check(DATABASE_URL="bogus://user:hunter2@host/db", SECRET_KEY="x")
    assert "hunter2" not in result.stderr


def test_settings__secret_key_required_without_debug(tmp_path):
    result = run_check(DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3", DEBUG="0")
    assert result.returncode == 1
    assert "SECRET_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_settings__sqlite_gets_wal_busy_timeout_and_immediate(tmp_path):
    code = (
        "from django.conf import settings as s; o = s.DATABASES['default']['OPTIONS'];"
        "print(o['transaction_mode'], o['timeout'], 'WAL' in o['init_command'])"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "fitnessdb.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "SECRET_KEY": "x",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.split() == ["IMMEDIATE", "20", "True"], result.stderr


def test_settings__postgres_url_parsed(tmp_path):
    code = (
        "from django.conf import settings as s; d = s.DATABASES['default'];"
        "print(d['ENGINE'], d['NAME'], d['PORT'])"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "fitnessdb.settings",
        "DATABASE_URL": "postgres://u:p@db.example:5433/fit",
        "SECRET_KEY": "x",
    }
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.split() == ["django.db.backends.postgresql", "fit", "5433"], result.stderr
