"""Moving engines, the headline use: SQLite -> PostgreSQL (or MariaDB) -> SQLite keeps every row.

Each step is a real ``manage.py`` process with its own DATABASE_URL, as a user would run it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.safemigrate.helpers import manage, project_env, table_dump
from tests.safemigrate.jsondump.data import decoded
from tests.safemigrate.vendors.servers import require, unique_name

ADD_DATA = "from tests.safemigrate.jsondump.data import add_fitness_data; add_fitness_data()"


def env_in(folder: Path, **extra: str) -> dict[str, str]:
    folder.mkdir()
    return project_env(folder, **extra)


def ok(*args: str, env: dict[str, str]) -> str:
    result = manage(*args, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def dump(env: dict[str, str]) -> Path:
    return Path(json.loads(ok("backup", "--json-only", "--format", "json", env=env))["path"])


def content(db: Path) -> dict[str, list[tuple]]:
    """Every row but the migration log's timestamps (each database was migrated on its own) and
    the sessions (logins, which dumps leave out by design: see the README's security model)."""
    rows = table_dump(db)
    rows.pop("django_migrations")
    rows.pop("django_session")
    return rows


@pytest.mark.services
@pytest.mark.slow
@pytest.mark.parametrize("engine", ["postgresql", "mysql"])
def test_json_dump__round_trips_sqlite_through_a_server_and_back(tmp_path, engine):
    server = require(engine)
    source = env_in(tmp_path / "source")
    ok("migrate", "--no-backup", "-v0", env=source)
    ok("shell", "-c", ADD_DATA, env=source)
    first = dump(source)

    name = unique_name(engine)
    server.create(name)
    try:
        middle = env_in(tmp_path / "server", DATABASE_URL=server.url(name))
        ok("migrate", "--no-backup", "-v0", env=middle)
        out = ok("restore", "--json", str(first), "--noinput", env=middle)
        assert f"Loaded {first.name} into 'default'" in out
        second = dump(middle)
        sets = server.query("SELECT COUNT(*) FROM tracker_workoutset", database=name)[0][0]
    finally:
        server.drop(name)

    target = env_in(tmp_path / "target")
    ok("migrate", "--no-backup", "-v0", env=target)
    ok("restore", "--json", str(second), "--noinput", env=target)
    third = dump(target)

    assert sets > 300
    assert decoded(second) == decoded(first)
    assert decoded(third) == decoded(first)
    assert content(tmp_path / "target" / "db.sqlite3") == content(tmp_path / "source" / "db.sqlite3")
    with sqlite3.connect(tmp_path / "target" / "db.sqlite3") as conn:
        assert conn.execute("SELECT COUNT(*) FROM tracker_workoutset").fetchone()[0] == sets
        assert conn.execute("SELECT COUNT(*) FROM django_session").fetchone()[0] == 0
