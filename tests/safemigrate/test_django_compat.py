"""``migrate`` stays Django's: its refusals in its own words before any backup, its exact --plan."""

from __future__ import annotations

import shutil
import sqlite3
from io import StringIO
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.core.management.commands.migrate import Command as DjangoMigrate

from tests.safemigrate.helpers import ROOT, manage, prepared_db


def assert_refused_untouched(result, tmp_path: Path, message: str) -> None:
    """Django's one-line refusal, no traceback, no backup taken, no migration run recorded."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"CommandError: {message}" in result.stderr
    assert "Traceback" not in result.stderr
    assert "restored" not in result.stderr + result.stdout
    backups = tmp_path / "backups"
    assert not backups.exists() or not any(backups.iterdir())
    with sqlite3.connect(tmp_path / "db.sqlite3") as conn:
        assert conn.execute("SELECT COUNT(*) FROM safemigrate_migrationrun").fetchone() == (0,)


def test_migrate__djangos_argument_refusals_take_no_backup(tmp_path):
    env = prepared_db(tmp_path)
    for args, message in [
        (("migrapp", "--run-syncdb"), "Can't use run_syncdb with app 'migrapp' as it has migrations."),
        (("nosuchapp",), "No installed app with label 'nosuchapp'."),
        (("migrapp", "nope"), "Cannot find a migration matching 'nope' from app 'migrapp'."),
    ]:
        assert_refused_untouched(manage("migrate", *args, env=env), tmp_path, message)
        # Word for word what Django's own migrate says.
        assert f"CommandError: {message}" in manage("migrate", *args, "--no-backup", env=env).stderr


def test_migrate__inconsistent_history_is_refused_before_the_backup(tmp_path):
    env = prepared_db(tmp_path)
    with sqlite3.connect(tmp_path / "db.sqlite3") as conn:
        conn.execute("DELETE FROM django_migrations WHERE app = 'contenttypes' AND name = '0001_initial'")
    result = manage("migrate", env=env)
    assert_refused_untouched(result, tmp_path, "Migration ")
    assert (
        "is applied before its dependency contenttypes.0001_initial on database 'default'." in result.stderr
    )


def test_migrate__conflicting_migrations_are_refused_before_the_backup(tmp_path):
    env = prepared_db(tmp_path)
    package = tmp_path / "conflicting"
    shutil.copytree(ROOT / "tests" / "migrapp" / "migrations", package)
    (package / "0002_other.py").write_text(
        "from django.db import migrations\n\n\n"
        "class Migration(migrations.Migration):\n"
        '    dependencies = [("migrapp", "0001_initial")]\n'
    )
    (tmp_path / "conflict_settings.py").write_text(
        'from tests.settings import *  # noqa: F403\n\nMIGRATION_MODULES = {"migrapp": "conflicting"}\n'
    )
    env.update(DJANGO_SETTINGS_MODULE="conflict_settings", PYTHONPATH=f"{ROOT}:{tmp_path}")
    result = manage("migrate", env=env)
    assert_refused_untouched(
        result,
        tmp_path,
        "Conflicting migrations detected; multiple leaf nodes in the migration graph: "
        "(0002_item_note, 0002_other in migrapp).",
    )


def django_and_ours(*args: str) -> tuple[str, str]:
    theirs, ours = StringIO(), StringIO()
    call_command(DjangoMigrate(), *args, stdout=theirs)
    call_command("migrate", *args, stdout=ours)
    return theirs.getvalue(), ours.getvalue()


@pytest.mark.django_db(transaction=True)
def test_migrate_plan__prints_exactly_what_django_prints(backup_dir):
    """Forward (AddField, RunPython described) and backward ("Undo") plans, character for character."""
    call_command("migrate", "migrapp", "0001", stdout=StringIO(), verbosity=0)
    backups = set(backup_dir.iterdir())
    try:
        theirs, ours = django_and_ours("--plan")
        assert "migrapp.0002_item_note" in theirs
        assert ours == theirs
        theirs, ours = django_and_ours("migrapp", "zero", "--plan")
        assert "Undo Create model Item" in theirs
        assert ours == theirs
        assert set(backup_dir.iterdir()) == backups
    finally:
        call_command("migrate", "migrapp", stdout=StringIO(), verbosity=0)


@pytest.mark.django_db
def test_safemigrate_plan__keeps_the_risk_annotated_plan():
    out = StringIO()
    call_command("safemigrate", "migrapp", "zero", "--plan", stdout=out)
    assert "Unapply migrapp.0001_initial  [destructive]" in out.getvalue()


def test_migrate__guarded_run_with_use_tz_false(tmp_path):
    """Naive datetimes for the catalogue and the run log (whatever SAFEMIGRATE_TEST_USE_TZ says)."""
    env = {**prepared_db(tmp_path), "SAFEMIGRATE_TEST_USE_TZ": "0"}
    result = manage("migrate", env=env)
    assert result.returncode == 0, result.stderr
    assert "Applied 1 migration(s) safely" in result.stdout
    with sqlite3.connect(tmp_path / "db.sqlite3") as conn:
        assert conn.execute("SELECT status FROM safemigrate_migrationrun").fetchall() == [("applied",)]
        assert conn.execute("SELECT COUNT(*) FROM safemigrate_backup WHERE verified").fetchone() == (1,)


@pytest.mark.django_db(transaction=True)
def test_migrate__nothing_to_apply_computes_the_plan_once(backup_dir, monkeypatch):
    """Every container start: one migration loader (Django's migrate reuses ours), no health check."""
    from django.db.migrations.loader import MigrationLoader

    from safemigrate import health

    built = []
    real = MigrationLoader.build_graph

    def counting(self):
        built.append(self)
        return real(self)

    monkeypatch.setattr(MigrationLoader, "build_graph", counting)
    asked = []
    monkeypatch.setattr(
        health, "backup_health", lambda **kwargs: asked.append(kwargs) or SimpleNamespace(problems=[])
    )
    out = StringIO()
    call_command("migrate", stdout=out)
    assert "No migrations to apply." in out.getvalue()
    assert len(built) == 1
    assert asked == []  # W001/W002: `check --database`, the admin and /healthz ask for them
    call_command("check", databases=["default"], stdout=StringIO(), stderr=StringIO())
    assert asked == [{"alias": "default"}]


def test_migrate__missing_dependency_is_one_line(tmp_path):
    """A migration graph that cannot be built: one line, before any backup (no-op check included)."""
    env = prepared_db(tmp_path)
    package = tmp_path / "broken"
    shutil.copytree(ROOT / "tests" / "migrapp" / "migrations", package)
    (package / "0003_orphan.py").write_text(
        "from django.db import migrations\n\n\n"
        "class Migration(migrations.Migration):\n"
        '    dependencies = [("migrapp", "0009_missing")]\n'
    )
    (tmp_path / "broken_settings.py").write_text(
        'from tests.settings import *  # noqa: F403\n\nMIGRATION_MODULES = {"migrapp": "broken"}\n'
    )
    env.update(DJANGO_SETTINGS_MODULE="broken_settings", PYTHONPATH=f"{ROOT}:{tmp_path}")
    result = manage("migrate", env=env)
    assert_refused_untouched(result, tmp_path, "Migration migrapp.0003_orphan dependencies reference")
