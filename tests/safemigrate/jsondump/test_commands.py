"""backup --with-json / --json-only and restore --json [--replace]: thin doors into jsondump."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from fitnessdb.tracker.models import Exercise, WorkoutSet
from tests.safemigrate.jsondump.conftest import empty_database


def run(*args: str, **options) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


@pytest.mark.usefixtures("fitness_data")
def test_backup__with_json_lists_the_dump_in_the_backup(backup_dir):
    data = json.loads(run("backup", "--with-json", "--format", "json"))

    dump = data["json_dump"]
    assert dump["file"] == data["name"].replace(".sqlite3.zst", ".json.zst")
    assert (backup_dir / dump["file"]).is_file()
    assert dump["models"]["tracker.workoutset"] == WorkoutSet.objects.count()


@pytest.mark.usefixtures("fitness_data")
def test_backup__json_only_writes_no_database_backup(backup_dir):
    out = run("backup", "--json-only", "--reason", "export")

    files = sorted(p.name for p in backup_dir.iterdir())
    assert len(files) == 2
    assert files[0].startswith("backup-export-")
    assert files[0].endswith("-default.json.zst")
    assert files[1] == files[0] + ".dump-manifest.json"
    assert f"JSON:     {backup_dir / files[0]}" in out
    assert "JSON dump done in " in out


def test_backup__with_json_and_json_only_do_not_go_together(fitness_data):
    with pytest.raises(CommandError, match="not allowed with argument"):
        call_command("backup", "--with-json", "--json-only")


@pytest.fixture
def dump_file(fitness_data, backup_dir) -> Path:
    data = json.loads(run("backup", "--json-only", "--format", "json"))
    empty_database()
    return Path(data["path"])


def test_restore__json_loads_and_reports_rows_per_model(dump_file):
    out = run("restore", "--json", str(dump_file), "--noinput")

    sets = WorkoutSet.objects.count()
    assert sets > 0
    assert "  tracker.workoutset" in out
    assert f"{sets:>12,}" in out
    assert f"Loaded {dump_file.name} into 'default' in " in out


def test_restore__json_refuses_data_in_one_line(dump_file):
    Exercise.objects.create(name="Already here", muscle_group="core", equipment="other")

    with pytest.raises(CommandError) as excinfo:
        call_command("restore", "--json", str(dump_file), "--noinput")

    assert str(excinfo.value) == (
        "database 'default' already has data (tracker.exercise); load into an empty, migrated "
        "database, or replace its data with --replace (a safety backup is taken first)"
    )


def test_restore__json_replace_asks_first(dump_file, monkeypatch):
    Exercise.objects.create(name="Already here", muscle_group="core", equipment="other")
    monkeypatch.setattr("builtins.input", lambda prompt: "no")

    with pytest.raises(CommandError, match="^restore cancelled; nothing was changed$"):
        call_command("restore", "--json", str(dump_file), "--replace", stdout=StringIO())

    monkeypatch.setattr("builtins.input", lambda prompt: "yes")
    out = run("restore", "--json", str(dump_file), "--replace")

    assert "Safety backup of the previous state: backup-pre_json_restore-" in out
    assert not Exercise.objects.filter(name="Already here").exists()


def test_restore__replace_needs_json(fitness_data):
    with pytest.raises(CommandError, match="^--replace goes with --json FILE$"):
        call_command("restore", "--latest", "--replace", "--noinput")
