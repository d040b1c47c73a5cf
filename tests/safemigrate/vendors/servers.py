"""The real PostgreSQL and MariaDB servers on loopback, and throwaway databases on them."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import skip_or_fail
from tests.safemigrate.helpers import manage, project_env

HOST = "127.0.0.1"
# Tables whose rows a restore or rollback legitimately changes (the catalogue and the run log).
BOOKKEEPING = {"safemigrate_backup", "safemigrate_migrationrun"}


@dataclass(frozen=True)
class Server:
    engine: str
    """Django's vendor name: postgresql or mysql."""
    label: str
    port: int
    user: str

    def url(self, name: str, password: str = "", user: str = "") -> str:
        scheme = "postgres" if self.engine == "postgresql" else "mysql"
        auth = user or self.user
        if password:
            auth += f":{password}"
        return f"{scheme}://{auth}@{HOST}:{self.port}/{name}"

    def display(self, name: str) -> str:
        """How the adapters name a database (``database_name()``)."""
        return f"{self.engine}://{self.user}@{HOST}:{self.port}/{name}"

    def connect(self, name: str | None = None, *, autocommit: bool = True) -> Any:
        if self.engine == "postgresql":
            import psycopg

            return psycopg.connect(
                host=HOST,
                port=self.port,
                user=self.user,
                dbname=name or "postgres",
                autocommit=autocommit,
                connect_timeout=3,
            )
        import MySQLdb

        kwargs = {"database": name} if name else {}
        conn = MySQLdb.connect(host=HOST, port=self.port, user=self.user, connect_timeout=3, **kwargs)
        conn.autocommit(autocommit)
        return conn

    def query(self, sql: str, params: tuple = (), *, database: str | None = None) -> list[tuple]:
        conn = self.connect(database)
        try:
            cursor = conn.cursor()
            cursor.execute(sql, params or None)
            rows = cursor.fetchall() if cursor.description else []
            return [tuple(r) for r in rows]
        finally:
            conn.close()

    def quote(self, name: str) -> str:
        return f'"{name}"' if self.engine == "postgresql" else f"`{name}`"

    def create(self, name: str) -> None:
        self.query(f"CREATE DATABASE {self.quote(name)}")

    def drop(self, name: str) -> None:
        force = " WITH (FORCE)" if self.engine == "postgresql" else ""
        self.query(f"DROP DATABASE IF EXISTS {self.quote(name)}{force}")

    def databases(self, prefix: str) -> list[str]:
        if self.engine == "postgresql":
            rows = self.query("SELECT datname FROM pg_database")
        else:
            rows = self.query("SHOW DATABASES")
        return sorted(r[0] for r in rows if r[0].startswith(prefix))

    def tables(self, name: str) -> list[str]:
        if self.engine == "postgresql":
            sql = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            rows = self.query(sql, database=name)
        else:
            rows = self.query(
                "SELECT TABLE_NAME FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'",
                (name,),
            )
        return sorted(r[0] for r in rows)

    def content(self, name: str) -> dict[str, list[tuple]]:
        """Every row of every table but the bookkeeping ones: what a restore must bring back."""
        return {
            t: self.query(f"SELECT * FROM {self.quote(t)} ORDER BY 1", database=name)  # noqa: S608
            for t in self.tables(name)
            if t not in BOOKKEEPING
        }

    def columns(self, name: str, table: str) -> list[str]:
        if self.engine == "postgresql":
            rows = self.query(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                (table,),
                database=name,
            )
        else:
            rows = self.query(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                (name, table),
            )
        return sorted(r[0] for r in rows)


SERVERS = {
    "postgresql": Server("postgresql", "PostgreSQL", 5432, "postgres"),
    "mysql": Server("mysql", "MariaDB", 3306, "root"),
}


def require(engine: str) -> Server:
    """The server, or a skip (a failure under SAFEMIGRATE_REQUIRE_SERVICES=1) when it is absent."""
    server = SERVERS[engine]
    try:
        server.query("SELECT 1")
    except ImportError as exc:
        skip_or_fail(f"the {server.label} driver is not installed ({exc}); pip install -e '.[mysql]'")
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "absent"
        skip_or_fail(f"{server.label} is not running on {HOST}:{server.port} ({exc})")
    return server


def unique_name(engine: str) -> str:
    return f"smv_{engine[:2]}_{os.getpid()}_{secrets.token_hex(3)}"


@dataclass
class LiveDB:
    """A migrated throwaway database driven through ``manage.py`` subprocesses."""

    server: Server
    name: str
    tmp: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def backup_dir(self) -> Path:
        return self.tmp / "backups"

    def run(self, *args: str, **extra: str) -> Any:
        env = {**self.env, **extra}
        return manage(*args, env=env, timeout=300)

    def ok(self, *args: str, **extra: str) -> Any:
        result = self.run(*args, **extra)
        assert result.returncode == 0, result.stderr
        return result

    def backup(self, reason: str = "manual") -> dict[str, Any]:
        return json.loads(self.ok("backup", "--reason", reason, "--format", "json").stdout)

    def content(self) -> dict[str, list[tuple]]:
        return self.server.content(self.name)

    def leftovers(self) -> list[str]:
        """Scratch or set-aside databases left on the server: there must be none."""
        return [n for n in self.server.databases(self.name) if n != self.name]


def make_live_db(server: Server, tmp: Path) -> LiveDB:
    name = unique_name(server.engine)
    server.create(name)
    db = LiveDB(server, name, tmp)
    db.env = project_env(tmp, DATABASE_URL=server.url(name))
    db.ok("migrate", "--no-backup", "-v0")
    return db


def vendor_module(engine: str) -> Any:
    """safemigrate's adapter module for ``engine``; a skip (or a failure) when its driver is absent."""
    import importlib

    label = SERVERS[engine].label
    try:
        return importlib.import_module(f"safemigrate.vendors.{engine}")
    except ImportError as exc:
        extra = "postgresql" if engine == "postgresql" else "mysql"
        skip_or_fail(f"the {label} driver is not installed ({exc}); pip install -e '.[{extra}]'")


def adapter_for(server: Server, name: str, *, user: str = "", password: str = "") -> Any:
    """The safemigrate adapter for a database, on its own Django connection (never ``default``)."""
    from django.db.utils import ConnectionHandler

    module = vendor_module(server.engine)
    handler = ConnectionHandler(
        {
            "default": {
                "ENGINE": f"django.db.backends.{server.engine}",
                "NAME": name,
                "USER": user or server.user,
                "PASSWORD": password,
                "HOST": HOST,
                "PORT": str(server.port),
            }
        }
    )
    return module.Adapter(handler["default"])
