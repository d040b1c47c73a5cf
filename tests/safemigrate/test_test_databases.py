"""A test database (Django's runner, pytest-django) never backs up into the real folder."""

from __future__ import annotations

import sqlite3

from tests.safemigrate.helpers import ROOT, manage, project_env

# What Django's test runner and pytest-django do with --keepdb / --reuse-db.
RUNNER = """
import sys
import django
django.setup()
from django.core.management import call_command
from django.db import connection
from django.test.utils import setup_databases, setup_test_environment
setup_test_environment()
setup_databases(verbosity=1, interactive=False, keepdb=True)
if sys.argv[1] == "first":  # leave the kept test database one migration behind
    call_command("migrate", "migrapp", "0001", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO migrapp_item (name, qty) VALUES ('kept', 1)")
"""


def test_keepdb__new_migrations_on_the_test_database_take_no_backup(tmp_path):
    test_db = tmp_path / "test_db.sqlite3"
    (tmp_path / "keepdb_settings.py").write_text(
        "from tests.settings import *  # noqa: F403\n"
        f'DATABASES["default"]["TEST"] = {{"NAME": {str(test_db)!r}}}  # noqa: F405\n'
    )
    env = project_env(tmp_path, DJANGO_SETTINGS_MODULE="keepdb_settings", PYTHONPATH=f"{ROOT}:{tmp_path}")
    real_backups = tmp_path / "backups"  # the project's SAFEMIGRATE_BACKUP_DIR
    for run in ("first", "second"):
        result = manage("shell", "--no-imports", "-c", RUNNER.replace("sys.argv[1]", repr(run)), env=env)
        assert result.returncode == 0, result.stderr
        assert "Using existing test database" in result.stderr
    assert not real_backups.exists() or not any(real_backups.iterdir())
    with sqlite3.connect(test_db) as conn:  # Django's migrate applied it, data kept
        assert conn.execute("SELECT name, note FROM migrapp_item").fetchall() == [("kept", "note for kept")]
    assert not (tmp_path / "db.sqlite3").exists()  # the real database was never touched
