"""``waitfordb``: wait until the database accepts connections (with ``--migrated``: is migrated).

For start-up scripts (a container entrypoint, a deploy hook) before ``safemigrate``: a database
server started beside the app may take a few seconds to accept connections. The messages name
the command's own options; a script adds its own advice (its variable names) after them.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import CommandError
from django.db import DatabaseError, connections

from safemigrate.management.base import SafeMigrateCommand
from safemigrate.plan import pending_plan


def describe_database(alias: str) -> str:
    """The database as a person recognises it (engine, host, port, name), never with a password."""
    connection = connections[alias]
    db = connection.settings_dict
    where = str(db.get("NAME") or "")
    if db.get("HOST"):
        port = f":{db['PORT']}" if db.get("PORT") else ""
        where = f"{db['HOST']}{port}/{where}"
    return f"{alias!r} ({connection.vendor} {where})"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].strip()


class Command(SafeMigrateCommand):
    help = (
        "Waits until the database accepts connections (and, with --migrated, until it has no "
        "unapplied migrations); exits 1 with a clear message after --timeout seconds."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--timeout", type=float, default=60.0, help="Seconds to wait in all (default 60)."
        )
        parser.add_argument(
            "--interval", type=float, default=1.0, help="Seconds between attempts (default 1)."
        )
        parser.add_argument(
            "--migrated",
            action="store_true",
            help="Also wait until another process has applied every migration.",
        )
        self.add_database_argument(parser)

    def handle(
        self,
        *args: Any,
        timeout: float,
        interval: float,
        migrated: bool,
        database: str,
        **options: Any,
    ) -> None:
        if timeout < 0 or interval <= 0:
            raise CommandError("--timeout must be >= 0 and --interval > 0")
        deadline = time.monotonic() + timeout
        name = describe_database(database)
        self._wait_for_connection(database, name, deadline, timeout, interval)
        if migrated:
            self._wait_for_migrations(database, name, deadline, timeout, interval)

    def _wait_for_connection(
        self, alias: str, name: str, deadline: float, timeout: float, interval: float
    ) -> None:
        connection = connections[alias]
        attempts = 0
        while True:
            attempts += 1
            try:
                connection.ensure_connection()
            except DatabaseError as exc:
                connection.close()
                if time.monotonic() >= deadline:
                    raise CommandError(
                        f"database {name} is not reachable after {timeout:g}s "
                        f"({attempts} attempts; last error: {first_line(exc)}); check the "
                        "database settings and that the database server is running, or raise "
                        "--timeout"
                    ) from exc
                if attempts == 1:
                    self.progress(f"Waiting for database {name}: {first_line(exc)}")
                time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
                continue
            if attempts > 1:
                self.progress(f"Database {name} is up (after {attempts} attempts)")
            return

    def _wait_for_migrations(
        self, alias: str, name: str, deadline: float, timeout: float, interval: float
    ) -> None:
        announced = False
        while True:
            plan = pending_plan(alias=alias)
            if plan.is_empty:
                if announced:
                    self.progress(f"Database {name} is migrated")
                return
            if time.monotonic() >= deadline:
                raise CommandError(
                    f"database {name} still has {len(plan.steps)} unapplied migration(s) after "
                    f"{timeout:g}s (first: {plan.steps[0].label}); the process that migrates it "
                    "has not finished or has failed: see its logs"
                )
            if not announced:
                self.progress(
                    f"Waiting for {len(plan.steps)} migration(s) on {name} to be applied by another process"
                )
                announced = True
            time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
