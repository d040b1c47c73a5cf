"""What ``restore`` tells the user: a file without a manifest, another engine's backup, a backup
older than the code (then W017 and the health endpoint), and the progress wording."""

from __future__ import annotations

import json
import os
import re
import shutil
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core import checks
from django.core.management import CommandError, call_command
from django.core.management.base import SystemCheckError
from django.db import connection
from django.utils import timezone

from safemigrate.health import health_report
from tests.safemigrate.helpers import manage, project_env

pytestmark = pytest.mark.django_db(transaction=True)


def backup_name(**options) -> str:
    out = StringIO()
    call_command("backup", format="json", stdout=out, stderr=StringIO(), **options)
    return json.loads(out.getvalue())["name"]


def restore(*args, **options) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("restore", *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def lone_file(backup_dir, tmp_path):
    """A backup file copied without its manifest, made a day before it was copied."""
    name = backup_name()
    copy = tmp_path / "copied" / name
    copy.parent.mkdir()
    shutil.copyfile(backup_dir / name, copy)
    os.utime(copy, (1_700_000_000, 1_700_000_000))  # 2023-11-14 22:13:20 UTC
    return copy


def test_restore_file__without_a_manifest_says_what_is_unknown(lone_file):
    for n in range(25):
        User.objects.create_user(f"user{n}")
    out, _ = restore(file=str(lone_file), interactive=False, no_safety_backup=True)
    preview = out.split("Restored")[0]
    assert "no manifest; file modified 2023-11-14 22:13:20 UTC" in preview
    assert "migrations in the file: unknown — no manifest" in preview
    assert "rows in the file: unknown — no manifest" in preview
    assert "un-applied" not in preview  # it used to claim every migration would be
    assert "rows now" not in preview  # and "N rows now -> - after" for every table
    assert not User.objects.filter(username="user0").exists()


def test_restore_file__a_truncated_file_without_a_manifest_blames_no_manifest(lone_file):
    data = lone_file.read_bytes()
    lone_file.write_bytes(data[: len(data) * 9 // 10])
    User.objects.create_user("still-here")
    with pytest.raises(CommandError) as caught:
        restore(file=str(lone_file), interactive=False, no_safety_backup=True)
    message = str(caught.value)
    assert "its manifest" not in message  # there is none to speak of
    assert "damaged or truncated" in message
    assert User.objects.filter(username="still-here").exists()


def test_restore__long_table_lists_end_with_how_many_more(backup_dir, settings):
    """More than 20 changed tables: the list says how many it left out."""
    name = backup_name()
    manifest_path = backup_dir / (name + ".manifest.json")
    manifest = json.loads(manifest_path.read_text())
    manifest["row_counts"] = {f"table_{n:02}": n + 1 for n in range(25)}
    manifest_path.write_text(json.dumps(manifest))
    out = StringIO()
    with pytest.raises(CommandError, match="cancelled"):  # the preview is printed before the prompt
        call_command("restore", name, stdout=out, stderr=StringIO(), interactive=True)
    listed = [line for line in out.getvalue().splitlines() if line.endswith("after restore")]
    assert len(listed) == 20
    assert "  table_00: no table now -> 1 rows after restore" in listed
    assert re.search(r"^  … and \d+ more tables$", out.getvalue(), re.MULTILINE)


@pytest.fixture(autouse=True)
def _no_prompt(monkeypatch):
    monkeypatch.setattr("builtins.input", lambda prompt: "no")


def test_restore__another_engines_backup_is_said_at_once_not_force(backup_dir):
    """A PostgreSQL backup's manifest (another database name too): no --force advice, restore --json."""
    name = backup_name(with_json=True)
    manifest_path = backup_dir / (name + ".manifest.json")
    manifest = json.loads(manifest_path.read_text())
    manifest.update(vendor="postgresql", database_name="postgresql://app@db:5432/fitnessdb")
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CommandError) as caught:
        restore(name, interactive=False)
    message = str(caught.value)
    assert "--force" not in message
    assert "is a backup of a PostgreSQL database and database 'default' is SQLite" in message
    assert f"manage.py restore --json {backup_dir / manifest['json_dump']['file']}" in message


@pytest.mark.services
def test_restore__a_sqlite_backup_into_postgresql(tmp_path):
    """The real case: a SQLite project's backup given to a PostgreSQL project."""
    from tests.safemigrate.vendors.servers import make_live_db, require

    server = require("postgresql")
    env = project_env(tmp_path)
    assert manage("migrate", "--no-backup", "-v0", env=env).returncode == 0
    made = manage("backup", "--format", "json", env=env)
    assert made.returncode == 0, made.stderr
    path = json.loads(made.stdout)["path"]
    live = make_live_db(server, tmp_path / "pg")
    try:
        result = live.run("restore", "--file", path, "--noinput")
        assert result.returncode != 0
        assert "--force" not in result.stderr
        assert "a backup of a SQLite database and database 'default' is PostgreSQL" in result.stderr
        assert "restore --json" in result.stderr
    finally:
        for each in server.databases(live.name):
            server.drop(each)


def test_restore__an_older_backup_says_run_migrate_then_w017_and_health(at_0001):
    """Restoring a backup from before a migration: the output, W017 and the health endpoint say so."""
    old = backup_name()
    call_command("migrate", stdout=StringIO(), stderr=StringIO())
    with connection.cursor() as cursor:  # applied by newer code, which was then rolled back
        cursor.execute(
            "INSERT INTO django_migrations (app, name, applied) VALUES ('migrapp', '0099_newer', %s)",
            [timezone.now()],
        )
    out, _ = restore(old, interactive=False)
    assert "migrations that will be un-applied: migrapp.0002_item_note, migrapp.0099_newer" in out
    assert "(this code has migrapp.0002_item_note: run migrate after the restore)" in out
    assert (
        "The restored database lacks 1 migration(s) of this code (migrapp.0002_item_note): run "
        "`python manage.py migrate` now" in out
    )
    found = [m for m in checks.run_checks(databases=["default"]) if m.id == "safemigrate.W017"]
    assert len(found) == 1
    assert "migrapp.0002_item_note" in found[0].msg
    report = health_report(aliases=["default"])["databases"][0]
    assert report["unapplied_migrations"] == 1
    assert "safemigrate.W017" in report["problems"]
    assert report["healthy"] is False
    call_command("migrate", stdout=StringIO(), stderr=StringIO())
    assert not [m for m in checks.run_checks(databases=["default"]) if m.id == "safemigrate.W017"]


def test_migrate__does_not_warn_w017_or_w001_about_what_it_is_doing(at_0001):
    """Before a guarded migrate: no "unapplied migrations" (it applies them), no "no verified
    backup" (it takes one); `check --database` still says both."""
    for path in at_0001.glob("backup-*"):
        path.unlink()
    err = StringIO()
    call_command("check", databases=["default"], stdout=StringIO(), stderr=err)
    assert "safemigrate.W001" in err.getvalue()
    assert "safemigrate.W017" in err.getvalue()
    err = StringIO()
    call_command("migrate", stdout=StringIO(), stderr=err, skip_checks=False)
    assert "safemigrate.W001" not in err.getvalue()
    assert "safemigrate.W017" not in err.getvalue()


def test_w001__said_by_check_database_not_by_every_migrate(at_0001):
    """The no-op migrate of every container start stays quiet (and cheap); `check --database`,
    the admin banner and /healthz/backups say it."""
    call_command("migrate", stdout=StringIO(), stderr=StringIO())
    for path in at_0001.glob("backup-*"):
        path.unlink()
    err = StringIO()
    call_command("migrate", stdout=StringIO(), stderr=err, skip_checks=False)
    assert "safemigrate.W001" not in err.getvalue()
    with pytest.raises(SystemCheckError) as caught:
        call_command(
            "check", databases=["default"], fail_level="WARNING", stdout=StringIO(), stderr=StringIO()
        )
    assert "safemigrate.W001" in str(caught.value)


def test_backup__progress_reads_plainly(backup_dir):
    err = StringIO()
    call_command("backup", stdout=StringIO(), stderr=err)
    assert "finishing reading" not in err.getvalue()
    assert "verifying the backup" in err.getvalue()
