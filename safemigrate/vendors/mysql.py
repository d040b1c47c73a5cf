"""MariaDB/MySQL: mariadb-dump streamed out, loaded into a scratch schema, then one RENAME TABLE.

- Snapshot: ``mariadb-dump --single-transaction --routines --triggers`` (``mysqldump`` when that is
  what is installed). Row counts are read from the dump stream itself, so the manifest counts
  exactly what the dump holds, whatever the application wrote meanwhile.
- Restore: the dump is loaded into a new scratch schema by the ``mariadb`` client, which stops at
  the first failed statement. There is no RENAME DATABASE, so the swap is ONE ``RENAME TABLE``
  statement that moves every live table aside and every scratch table in: the server applies it
  all or nothing. Views, triggers and routines (which cannot move between schemas) are then
  recreated in the live schema from the scratch's definitions. Other connections using the live
  schema are killed first (and logged), so none is left holding a table the swap needs.
- Lock: ``GET_LOCK(name, 0)`` on a dedicated connection with no default schema, so neither a
  restore nor a migration can drop it; ``IS_USED_LOCK`` + the process list name the holder.
- Credentials: the password goes to the tools in ``MYSQL_PWD`` (as Django's ``dbshell`` does),
  never on the command line.

The restore sequence and the lock's skeleton are ``server.ServerAdapter``'s.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import MySQLdb
from django.db import transaction

from safemigrate.codec import CHUNK
from safemigrate.exceptions import BackupError, RestoreError, SafeMigrateError
from safemigrate.streams import ReadableStream, WritableStream
from safemigrate.vendors.base import SECRET_TABLES, Progress, Scratch, SnapshotInfo
from safemigrate.vendors.external import child_env, find_tool, stream_in, stream_out, tool_version
from safemigrate.vendors.mysqldump_guard import DumpGuard, DumpRefused
from safemigrate.vendors.server import Loader, ServerAdapter, ServerScratch

logger = logging.getLogger("safemigrate")

_INSTALL = "apt-get install mariadb-client (for a MySQL server: the mysql-client package of its version)"
_DUMP_TOOLS = ("mariadb-dump", "mysqldump")
_CLIENT_TOOLS = ("mariadb", "mysql")
_LOCK_WAIT = 60  # seconds the RENAME TABLE waits for other sessions' metadata locks
_STRING = re.compile(rb"'[^'\\]*(?:\\.[^'\\]*)*'")
_DATA_HEADER = re.compile(rb"^-- Dumping data for table `((?:[^`]|``)*)`")
_STRUCTURE_HEADER = re.compile(rb"^-- Table structure for table `([^`]*)`")
_DUMP_DONE = b"-- Dump completed"
_SYSTEM_COMMANDS = ("Daemon", "Binlog Dump", "Slave_IO", "Slave_SQL", "Slave_worker")
_MIGRATING = "safemigrate-migrating"
"""Prefix of a second named lock, held beside the lock only while a migration runs."""


class MySQLScratch(ServerScratch):
    """A scratch schema on the same server."""

    kind = "scratch schema"


def _q(name: str) -> str:
    """A quoted identifier."""
    return "`" + name.replace("`", "``") + "`"


class DumpRowCounter:
    """Counts the rows of each table in a mariadb-dump/mysqldump stream, as it passes.

    Handles both layouts: one row per line after ``INSERT INTO `t` VALUES`` (MariaDB 10.11+) and
    one extended INSERT per line (older dumps, MySQL). Strings never contain a raw newline
    (the dump escapes them), so lines and ``;\\n`` mark the structure.
    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.table: str | None = None
        self.in_rows = False
        self.tail = b""
        self.last = b""

    def write(self, chunk: bytes | memoryview) -> int:
        data = self.tail + bytes(chunk) if self.tail else bytes(chunk)
        end = data.rfind(b"\n") + 1
        self.tail = data[end:]
        self._scan(data, end)
        self.last = (self.last + data[-256:])[-256:]
        return len(chunk)

    def _scan(self, data: bytes, end: int) -> None:
        pos = 0
        while pos < end:
            if self.in_rows and self.table is not None:
                stop = data.find(b";\n", pos, end)
                last = end if stop < 0 else stop + 2
                self.counts[self.table] += data.count(b"\n", pos, last)
                self.in_rows = stop < 0
                pos = last
                continue
            newline = data.find(b"\n", pos, end)
            line = data[pos:newline]
            pos = newline + 1
            if line.startswith(b"INSERT INTO ") and self.table is not None:
                if line.endswith(b"VALUES"):
                    self.in_rows = True
                else:
                    stripped = _STRING.sub(b"''", line) if b"'" in line else line
                    self.counts[self.table] += stripped.count(b"),(") + 1
            elif line.startswith(b"-- Dumping data for table "):
                found = _DATA_HEADER.match(line)
                if found:
                    self.table = found[1].decode("utf-8", "replace").replace("``", "`")
                    self.counts.setdefault(self.table, 0)
            elif line.startswith((b"UNLOCK TABLES", b"DELIMITER", b"-- Table structure")):
                self.table = None
                found = _STRUCTURE_HEADER.match(line)
                if found and found[1].decode("utf-8", "replace") in SECRET_TABLES:
                    self.counts.setdefault(found[1].decode(), 0)  # its rows are left out on purpose

    @property
    def complete(self) -> bool:
        """True when the stream ended with the dump's own completion line."""
        return _DUMP_DONE in self.last


class _Tee:
    """Writes to the sink and to the row counter."""

    def __init__(self, sink: WritableStream, counter: DumpRowCounter) -> None:
        self.sink, self.counter = sink, counter

    def write(self, data: bytes) -> int:
        self.sink.write(data)
        self.counter.write(data)
        return len(data)


class Adapter(ServerAdapter[MySQLScratch]):
    vendor = "mysql"
    raw_extension = "sql"
    scheme = "mysql"
    default_port = 3306
    name_limit = 64
    scratch_class = MySQLScratch
    driver_errors = (MySQLdb.Error,)

    # --- identity and connections ---------------------------------------------------------
    @property
    def live_name(self) -> str:
        s = self.connection.settings_dict
        options = s.get("OPTIONS") or {}
        return str(options.get("database", options.get("db", s["NAME"])))

    def _connect(
        self,
        schema: str | None,
        *,
        error: type[SafeMigrateError] = SafeMigrateError,
        account: tuple[str, str] | None = None,
    ) -> Any:
        params = dict(self.connection.get_connection_params())
        for key in ("database", "db", *(("user", "password", "passwd") if account else ())):
            params.pop(key, None)
        if schema:
            params["database"] = schema
        if account:
            params["user"], params["password"] = account
        try:
            conn = MySQLdb.connect(**params)
            conn.autocommit(True)
        except MySQLdb.Error as exc:
            raise error(f"cannot connect to {self._server()}: {exc}") from exc
        return conn

    @contextlib.contextmanager
    def _cursor(self, schema: str | None, **kwargs: Any) -> Iterator[Any]:
        conn = self._connect(schema, **kwargs)
        try:
            with conn.cursor() as cursor:
                yield cursor
        finally:
            conn.close()

    def _admin(
        self, *, error: type[SafeMigrateError] = SafeMigrateError
    ) -> contextlib.AbstractContextManager[Any]:
        return self._cursor(None, error=error)

    def _schema(self, scratch: Scratch | None) -> str:
        return self.live_name if scratch is None else self._own(scratch).name

    def _client_env(self, account: tuple[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
        """Connection options for the client tools, as Django's ``dbshell`` builds them.

        The password is only in the environment (``MYSQL_PWD``), never in the arguments.
        ``account``: connect as that (user, password) instead.
        """
        s = self.connection.settings_dict
        options = s.get("OPTIONS") or {}
        args: list[str] = []
        if options.get("read_default_file"):
            args.append(f"--defaults-file={options['read_default_file']}")
        user = options.get("user", s.get("USER"))
        password = options.get("password", options.get("passwd", s.get("PASSWORD")))
        if account:
            user, password = account
        host = options.get("host", s.get("HOST"))
        port = options.get("port", s.get("PORT"))
        if user:
            args.append(f"--user={user}")
        if host:
            args.append(f"--socket={host}" if "/" in str(host) else f"--host={host}")
        if port:
            args.append(f"--port={port}")
        ssl = options.get("ssl") or {}
        for key, flag in (("ca", "--ssl-ca"), ("cert", "--ssl-cert"), ("key", "--ssl-key")):
            if ssl.get(key):
                args.append(f"{flag}={ssl[key]}")
        args.append(f"--default-character-set={options.get('charset') or 'utf8mb4'}")
        env = {"MYSQL_PWD": str(password)} if password else {}
        return args, child_env(env)

    def _hint(self) -> str:
        return "; if the client tools do not match the server, install the matching client: " + _INSTALL

    # --- snapshot -------------------------------------------------------------------------
    def dump_command(self) -> tuple[list[str], dict[str, str]]:
        """The dump tool's argument list and environment (the password only in the environment)."""
        tool = find_tool(_DUMP_TOOLS, error=BackupError, install=_INSTALL)
        options, env = self._client_env()
        args = [
            tool,
            *options,
            "--single-transaction",
            "--routines",
            "--triggers",
            "--no-tablespaces",
            "--comments",
            *(f"--ignore-table-data={self.live_name}.{table}" for table in SECRET_TABLES),
            self.live_name,
        ]
        return args, env

    def snapshot(
        self, sink: WritableStream, *, workdir: Path, progress: Progress | None = None
    ) -> SnapshotInfo:
        args, env = self.dump_command()
        counter = DumpRowCounter()
        if progress:
            progress(f"{Path(args[0]).name} of {self.database_name()} started")
        stream_out(
            args,
            env=env,
            sink=_Tee(sink, counter),
            error=BackupError,
            what=f"{Path(args[0]).name} of {self.database_name()}",
            hint=self._hint(),
        )
        errors = [] if counter.complete else ["the dump did not end with its completion line"]
        # The dump is not parsed for them: read from the live database right after it, under
        # the migration lock that keeps them as they were.
        migrations = self.applied_migrations()
        return SnapshotInfo(row_counts=counter.counts, migrations=migrations, integrity_errors=errors)

    # --- restore (the sequence: ServerAdapter.restore_to_scratch) -------------------------
    def restore_command(
        self, scratch_name: str, account: tuple[str, str] | None = None
    ) -> tuple[list[str], dict[str, str]]:
        """The client's argument list and environment (the password only in the environment)."""
        tool = find_tool(_CLIENT_TOOLS, error=RestoreError, install=_INSTALL)
        options, env = self._client_env(account)
        # A backup file may be crafted: no LOAD DATA LOCAL (it reads the app host's files) and,
        # with MariaDB's client, no client commands that touch the file system or run programs.
        sandbox = ["--sandbox"] if "MariaDB" in tool_version(tool, env) else []
        return [tool, *options, "--binary-mode", "--batch", "--local-infile=0", *sandbox, scratch_name], env

    def _create_schema(self, cursor: Any, name: str, *, like: str) -> None:
        cursor.execute(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME "
            "FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s",
            [like],
        )
        row = cursor.fetchone()
        charset = f" CHARACTER SET {row[0]} COLLATE {row[1]}" if row else ""
        cursor.execute(f"CREATE DATABASE {_q(name)}{charset}")

    def _new_scratch(
        self, source: ReadableStream, account: tuple[str, str] | None
    ) -> tuple[MySQLScratch, Loader]:
        name = self._scratch_name()
        args, env = self.restore_command(name, account)  # a missing tool fails before any work
        with self._admin(error=RestoreError) as cursor:
            try:
                self._create_schema(cursor, name, like=self.live_name)
                others = set(self._database_names(cursor)) - {name}
            except MySQLdb.Error as exc:
                raise RestoreError(
                    f"cannot create the scratch schema {name} on {self._server()}: {exc}; the "
                    "database user needs the CREATE privilege. Nothing was written to the live "
                    "database"
                ) from exc
        scratch = MySQLScratch(name, account)

        def load(progress: Progress | None) -> None:
            counter = DumpRowCounter()
            # Every statement is checked before the client sees it: none may name another schema.
            guard = DumpGuard(others)

            def checked(chunk: bytes, *, last: bool = False) -> bytes:
                try:
                    return guard.feed(chunk) + (guard.finish() if last else b"")
                except DumpRefused as exc:
                    raise RestoreError(
                        f"the backup was refused while loading it into {scratch.description}: "
                        f"{exc}; it reaches outside that schema (a crafted or foreign dump?) and "
                        "was not run. Use a backup this installation made"
                    ) from None

            def chunks() -> Iterator[bytes]:
                first = source.read(CHUNK)
                if not first:
                    raise RestoreError("the backup holds no data (empty or truncated)")
                if not first.lstrip().startswith((b"/*", b"--")):
                    raise RestoreError("the backup does not contain a MariaDB/MySQL dump")
                counter.write(first)
                yield checked(first)
                while chunk := source.read(CHUNK):
                    counter.write(chunk)
                    yield checked(chunk)
                yield checked(b"", last=True)
                if not counter.complete:
                    raise RestoreError(
                        "the dump in the backup is incomplete (no completion line); it was "
                        "loaded into the scratch schema only, not the live one. Restore another backup"
                    )

            if progress:
                progress(f"loading the dump into {scratch.description}")
            stream_in(
                args,
                env=env,
                chunks=chunks(),
                error=RestoreError,
                what=f"loading the dump into {scratch.description}",
                hint="; it ran in that scratch schema, not in the live one (no statement may name another)",
            )

        return scratch, load

    def _database_names(self, admin: Any) -> list[str]:
        admin.execute("SHOW DATABASES")
        return [str(r[0]) for r in admin.fetchall()]

    def _in_use(self, admin: Any, name: str) -> bool:
        admin.execute("SELECT 1 FROM information_schema.PROCESSLIST WHERE DB = %s", [name])
        return admin.fetchone() is not None

    def _drop_database(self, admin: Any, name: str, *, force: bool) -> None:
        admin.execute(f"DROP DATABASE IF EXISTS {_q(name)}")

    def _kill_others(self, cursor: Any, schema: str) -> None:
        """Kill every other connection using ``schema``, saying so in the log."""
        cursor.execute(
            "SELECT ID, USER, HOST, COMMAND FROM information_schema.PROCESSLIST "
            "WHERE DB = %s AND ID <> CONNECTION_ID()",
            [schema],
        )
        rows = [r for r in cursor.fetchall() if r[3] not in _SYSTEM_COMMANDS]
        if not rows:
            return
        logger.warning(
            "killing %d connection(s) to %s so the restored tables can replace its tables: %s",
            len(rows),
            schema,
            ", ".join(f"id {i} (user {u}, from {h or 'a local socket'})" for i, u, h, _ in rows),
        )
        for row in rows:
            with contextlib.suppress(MySQLdb.Error):  # it may have ended meanwhile
                cursor.execute(f"KILL CONNECTION {int(row[0])}")

    def _tables(self, cursor: Any, schema: str, kind: str = "BASE TABLE") -> list[str]:
        cursor.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = %s ORDER BY TABLE_NAME",
            [schema, kind],
        )
        return [r[0] for r in cursor.fetchall()]

    def _objects(self, cursor: Any, schema: str) -> list[tuple[str, str, str, str]]:
        """Views, routines and triggers of ``schema``: (kind, name, sql_mode, CREATE statement).

        Read with ``schema`` as the current schema, so the statements name no schema and can
        be run in another one. Ordered for re-creation: routines, views, then triggers.
        """
        cursor.execute(f"USE {_q(schema)}")
        found: list[tuple[str, str, str, str]] = []
        cursor.execute(
            "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES "
            "WHERE ROUTINE_SCHEMA = %s ORDER BY ROUTINE_TYPE, ROUTINE_NAME",
            [schema],
        )
        for kind, name in cursor.fetchall():
            cursor.execute(f"SHOW CREATE {kind} {_q(name)}")
            row = cursor.fetchone()
            found.append((kind, name, row[1], row[2]))
        for name in self._tables(cursor, schema, "VIEW"):
            cursor.execute(f"SHOW CREATE VIEW {_q(name)}")
            found.append(("VIEW", name, "", cursor.fetchone()[1]))
        cursor.execute(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s "
            "ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER",
            [schema],
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f"SHOW CREATE TRIGGER {_q(name)}")
            row = cursor.fetchone()
            found.append(("TRIGGER", name, row[1], row[2]))
        return found

    @staticmethod
    def _drop_objects(cursor: Any, schema: str, objects: list[tuple[str, str, str, str]]) -> None:
        for kind, name, _, _ in reversed(objects):
            cursor.execute(f"DROP {kind} IF EXISTS {_q(schema)}.{_q(name)}")

    @staticmethod
    def _create_objects(cursor: Any, schema: str, objects: list[tuple[str, str, str, str]]) -> None:
        cursor.execute(f"USE {_q(schema)}")
        pending = list(objects)
        while pending:  # a view may use a view created later: retry until nothing progresses
            failed: list[tuple[tuple[str, str, str, str], MySQLdb.Error]] = []
            for item in pending:
                kind, _, sql_mode, statement = item
                try:
                    if sql_mode or kind != "VIEW":
                        cursor.execute("SET SESSION sql_mode = %s", [sql_mode])
                    cursor.execute(statement)
                except MySQLdb.Error as exc:
                    failed.append((item, exc))
            if len(failed) == len(pending):
                item, first_error = failed[0]
                raise RestoreError(f"cannot recreate {item[0].lower()} {item[1]}: {first_error}")
            pending = [item for item, _ in failed]

    def swap_in(
        self, scratch: Scratch, *, progress: Progress | None = None, keep: bool = False
    ) -> str | None:
        scratch_name = self._own(scratch).name
        live, aside = self.live_name, self._aside_name(keep=keep)
        with self._admin(error=RestoreError) as cursor:
            try:
                cursor.execute("SET SESSION lock_wait_timeout = %s", [_LOCK_WAIT])
                cursor.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", [live])
                if not cursor.fetchone():
                    self._create_schema(cursor, live, like=scratch_name)
                new_objects = self._objects(cursor, scratch_name)
                old_objects = self._objects(cursor, live)
                cursor.execute("USE information_schema")  # none of ours while swapping
                moves = [f"{_q(live)}.{_q(t)} TO {_q(aside)}.{_q(t)}" for t in self._tables(cursor, live)] + [
                    f"{_q(scratch_name)}.{_q(t)} TO {_q(live)}.{_q(t)}"
                    for t in self._tables(cursor, scratch_name)
                ]
                self._create_schema(cursor, aside, like=live)
            except MySQLdb.Error as exc:
                raise RestoreError(
                    f"cannot prepare the swap into {live}: {exc}; the live database was not changed"
                ) from exc
            old_triggers = [o for o in old_objects if o[0] == "TRIGGER"]
            try:
                self._kill_others(cursor, live)
                # Tables with triggers cannot change schema: the triggers go first.
                self._drop_objects(cursor, scratch_name, [o for o in new_objects if o[0] == "TRIGGER"])
                self._drop_objects(cursor, live, old_triggers)
                # One statement: the server renames all of them or none.
                if moves:
                    cursor.execute("RENAME TABLE " + ", ".join(moves))
            except MySQLdb.Error as exc:
                with contextlib.suppress(MySQLdb.Error, RestoreError):
                    self._create_objects(cursor, live, old_triggers)
                with contextlib.suppress(MySQLdb.Error):
                    cursor.execute(f"DROP DATABASE IF EXISTS {_q(aside)}")
                raise RestoreError(
                    f"cannot swap the restored tables into {live}: {exc}; the live database was "
                    "not changed. Stop what holds its tables and restore again"
                ) from exc
            if progress:
                progress(f"restored tables renamed into {live}; dropping the previous ones")
            try:
                self._drop_objects(cursor, live, [o for o in old_objects if o[0] != "TRIGGER"])
                self._create_objects(cursor, live, new_objects)
            except (MySQLdb.Error, RestoreError) as exc:
                raise RestoreError(
                    f"the tables of {live} were restored, but its views, routines or triggers "
                    f"were not ({exc}); the previous tables are kept in {aside}"
                ) from exc
            for leftover in (scratch_name,) if keep else (aside, scratch_name):
                try:
                    cursor.execute(f"DROP DATABASE IF EXISTS {_q(leftover)}")
                except MySQLdb.Error as exc:
                    logger.warning("could not drop %s (%s); drop it by hand", leftover, exc)
        return aside if keep else None

    def kept_settings(self, kept: str) -> dict[str, Any]:
        settings = dict(self.connection.settings_dict)
        options = {k: v for k, v in (settings.get("OPTIONS") or {}).items() if k not in ("db", "database")}
        return {**settings, "NAME": kept, "OPTIONS": options}

    # --- checks ---------------------------------------------------------------------------
    def integrity_errors(self, scratch: Scratch | None = None, *, level: str = "quick") -> list[str]:
        schema = self._schema(scratch)
        errors: list[str] = []
        try:
            with self._cursor(schema, account=self._account(scratch)) as cursor:
                tables = self._tables(cursor, schema)
                option = " EXTENDED" if level == "full" else ""
                for start in range(0, len(tables), 50):
                    names = ", ".join(_q(t) for t in tables[start : start + 50])
                    cursor.execute(f"CHECK TABLE {names}{option}")
                    for table, _op, kind, text in cursor.fetchall():
                        kind = str(kind).lower()
                        if kind == "error" or (kind == "status" and text != "OK"):
                            errors.append(f"table {str(table).split('.', 1)[-1]}: {text}")
        except Exception as exc:  # noqa: BLE001 - failing to open is a finding, not a crash
            return [f"database unreadable: {exc}"]
        return errors

    def row_counts(self, scratch: Scratch | None = None) -> dict[str, int]:
        schema = self._schema(scratch)
        with self._cursor(schema, account=self._account(scratch)) as cursor:
            counts: dict[str, int] = {}
            for table in self._tables(cursor, schema):
                cursor.execute(f"SELECT COUNT(*) FROM {_q(table)}")  # noqa: S608
                counts[table] = int(cursor.fetchone()[0])
            return counts

    def applied_migrations(self, scratch: Scratch | None = None) -> dict[str, list[str]]:
        schema = self._schema(scratch)
        with self._cursor(schema, account=self._account(scratch)) as cursor:
            if "django_migrations" not in self._tables(cursor, schema):
                return {}
            cursor.execute("SELECT app, name FROM django_migrations ORDER BY app, id")
            applied: dict[str, list[str]] = {}
            for app, name in cursor.fetchall():
                applied.setdefault(app, []).append(name)
            return applied

    # --- consistent reads: one REPEATABLE READ snapshot (Django's default is READ COMMITTED) --
    @contextlib.contextmanager
    def read_snapshot(self) -> Iterator[None]:
        if not self.connection.in_atomic_block:  # applies to the next transaction
            with self.connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        with transaction.atomic(using=self.alias):
            yield

    # --- lock: GET_LOCK on a dedicated connection -----------------------------------------
    def _lock_name(self, prefix: str = "safemigrate") -> str:
        name = f"{prefix}:{self.live_name}"
        if len(name) > 64:
            name = f"{prefix}:" + hashlib.sha256(self.live_name.encode()).hexdigest()[:40]
        return name

    def _lock_session(self) -> Any:
        return self._connect(None)

    def _take_lock(self, conn: Any) -> bool:
        with conn.cursor() as cursor:
            # A long migration must not lose its lock to an idle timeout.
            cursor.execute("SET SESSION wait_timeout = 31536000")
            cursor.execute("SELECT GET_LOCK(%s, 0)", [self._lock_name()])
            row = cursor.fetchone()
        return bool(row and row[0] == 1)

    def _lock_probe(self, *, migrating: bool) -> tuple[str, list[Any]]:
        return "SELECT IS_USED_LOCK(%s) IS NOT NULL", [
            self._lock_name(_MIGRATING if migrating else "safemigrate")
        ]

    def _mark_migrating(self, conn: Any, *, on: bool) -> None:
        call = "GET_LOCK(%s, 0)" if on else "RELEASE_LOCK(%s)"
        with conn.cursor() as cursor:
            cursor.execute(f"SELECT {call}", [self._lock_name(_MIGRATING)])

    def _describe_holder(self, admin: Any) -> str | None:
        admin.execute("SELECT IS_USED_LOCK(%s)", [self._lock_name()])
        row = admin.fetchone()
        if not row or row[0] is None:
            return None
        admin.execute("SELECT USER, HOST, TIME FROM information_schema.PROCESSLIST WHERE ID = %s", [row[0]])
        info = admin.fetchone()
        if info is None:
            return f"server connection {row[0]}"
        user, host, seconds = info
        return f"server connection {row[0]} of {user} from {host}, holding it for {seconds}s"
