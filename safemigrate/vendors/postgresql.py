"""PostgreSQL: pg_dump streamed out, pg_restore into a scratch database, then a renaming swap.

- Snapshot: ``pg_dump --format=custom --compress=0`` (our codec compresses once) reading a snapshot
  exported by our own REPEATABLE READ transaction, which counts every table's rows in parallel: the
  counts in the manifest are exactly those of the dump.
- Restore: a new scratch database (same encoding, locale, tablespace and owner as the live one),
  ``pg_restore --exit-on-error`` into it from the stream, checks, then one transaction renames
  live -> old and scratch -> live. There is always a database under the live name; the old one
  is dropped afterwards. Other connections to the live database are terminated (and logged)
  first: PostgreSQL cannot rename a database in use.
- Lock: ``pg_try_advisory_lock`` on a dedicated connection to the maintenance database (never
  Django's, never the live database's), so restores and migrations cannot drop it; its
  ``application_name`` names the holder for ``lock_holder``.
- Credentials: connection settings go to the tools as PG* environment variables, never argv.

The restore sequence and the lock's skeleton are ``server.ServerAdapter``'s; the database
administration (create, carry settings over, terminate, rename, drop) is ``pgadmin``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import threading
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from django.db import transaction
from psycopg import sql

from safemigrate.codec import CHUNK
from safemigrate.exceptions import BackupError, RestoreError, SafeMigrateError
from safemigrate.streams import ReadableStream, WritableStream
from safemigrate.vendors import pgadmin
from safemigrate.vendors.base import RESTORE, SECRET_TABLES, TRANSACTION, Progress, Scratch, SnapshotInfo
from safemigrate.vendors.external import child_env, find_tool, stream_in, stream_out, tool_version
from safemigrate.vendors.pgarchive import ArchiveRefused, read_toc, refusal, replay
from safemigrate.vendors.server import Loader, ServerAdapter, ServerScratch

if TYPE_CHECKING:
    from safemigrate.plan import MigrationPlan

logger = logging.getLogger("safemigrate")

PGDUMP_MAGIC = b"PGDMP"
_LOCK_CLASS = 0x5AFE  # first key of pg_try_advisory_lock(int, int): "safemigrate"
_MIGRATING_CLASS = 0x5AFF  # held beside the lock only while a migration runs (the fence asks)
_MAINTENANCE_DATABASES = ("postgres", "template1")
_DJANGO_ONLY_PARAMS = ("cursor_factory", "context", "prepare_threshold")
_TABLES = r"""
    SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
    ORDER BY n.nspname, c.relname
"""
_BTREE_INDEXES = r"""
    SELECT c.oid, n.nspname, c.relname FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_am am ON am.oid = c.relam
    WHERE am.amname = 'btree' AND i.indisvalid AND i.indisready AND c.relpersistence <> 't'
      AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
    ORDER BY n.nspname, c.relname
"""


class PostgresScratch(ServerScratch):
    """A scratch database on the same server; its rows are counted while it is checked."""

    def __init__(self, name: str, account: tuple[str, str] | None = None) -> None:
        super().__init__(name, account)
        self.counts: dict[str, int] | None = None
        self.counting: threading.Thread | None = None
        self.count_error: BaseException | None = None

    def start_counting(self, count: Callable[[], dict[str, int]]) -> None:
        """Count rows on another connection while the integrity check runs."""
        if self.counts is not None or self.counting is not None:
            return

        def run() -> None:
            try:
                self.counts = count()
            except BaseException as exc:  # noqa: BLE001 - re-raised by wait_counts()
                self.count_error = exc

        self.counting = threading.Thread(target=run, name="safemigrate-count", daemon=True)
        self.counting.start()

    def wait_counts(self) -> dict[str, int] | None:
        if self.counting is not None:
            self.counting.join()
            self.counting = None
        if self.count_error is not None:
            error, self.count_error = self.count_error, None
            raise error
        return self.counts

    def settle(self) -> None:
        with contextlib.suppress(Exception):
            self.wait_counts()


def _table_label(schema: str, table: str) -> str:
    return table if schema == "public" else f"{schema}.{table}"


def _tables(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in conn.execute(_TABLES).fetchall()]


def _count_rows(conn: psycopg.Connection[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for schema, table in _tables(conn):
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
        row = conn.execute(query).fetchone()
        counts[_table_label(schema, table)] = int(row[0]) if row else 0
    return counts


def _migrations(conn: psycopg.Connection[Any]) -> dict[str, list[str]]:
    exists = conn.execute("SELECT to_regclass('django_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    applied: dict[str, list[str]] = {}
    for app, name in conn.execute("SELECT app, name FROM django_migrations ORDER BY app, id"):
        applied.setdefault(app, []).append(name)
    return applied


def _amcheck_errors(conn: psycopg.Connection[Any], *, heapallindexed: bool) -> list[str]:
    """amcheck's ``bt_index_check`` on every B-tree index, when the extension can be used.

    Runs in a transaction that is rolled back, so creating the extension for the check leaves
    nothing behind; without the extension (or the right to create it) it checks nothing.
    """
    errors: list[str] = []
    with conn.transaction(force_rollback=True):
        try:
            with conn.transaction():
                conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        except psycopg.Error as exc:
            logger.debug("amcheck unavailable, index checks skipped: %s", exc)
            return []
        row = conn.execute(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'amcheck'"
        ).fetchone()
        if row is None:
            return []
        check = sql.SQL("SELECT {}(%s::oid::regclass, %s)").format(sql.Identifier(row[0], "bt_index_check"))
        for oid, schema, index in conn.execute(_BTREE_INDEXES).fetchall():
            try:
                with conn.transaction():
                    conn.execute(check, (oid, heapallindexed))
            except psycopg.errors.InsufficientPrivilege as exc:
                logger.debug("amcheck not permitted, index checks skipped: %s", exc)
                return errors
            except psycopg.Error as exc:
                errors.append(f"index {_table_label(schema, index)} is damaged: {exc}".strip())
                if len(errors) > 50:
                    break
    return errors


class Adapter(ServerAdapter[PostgresScratch]):
    vendor = "postgresql"
    raw_extension = "pgdump"
    scheme = "postgresql"
    default_port = 5432
    name_limit = 63
    scratch_class = PostgresScratch
    driver_errors = (psycopg.Error,)

    # --- identity and connections ---------------------------------------------------------
    @property
    def live_name(self) -> str:
        return str(self.connection.settings_dict["NAME"])

    def _params(self, dbname: str) -> dict[str, Any]:
        params = dict(self.connection.get_connection_params())
        for key in _DJANGO_ONLY_PARAMS:
            params.pop(key, None)
        params["dbname"] = dbname
        params.setdefault("application_name", "safemigrate")
        return params

    def _connect(
        self, dbname: str, *, error: type[SafeMigrateError] = SafeMigrateError, **extra: Any
    ) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(**{**self._params(dbname), **extra}, autocommit=True)
        except psycopg.Error as exc:
            raise error(f"cannot connect to {dbname} on {self._server()}: {exc}".strip()) from exc

    def _maintenance(
        self, *, error: type[SafeMigrateError] = SafeMigrateError, **extra: Any
    ) -> psycopg.Connection[Any]:
        """A connection to a database other than the live one (to create, rename and lock)."""
        first: SafeMigrateError | None = None
        for name in _MAINTENANCE_DATABASES:
            try:
                return self._connect(name, error=error, **extra)
            except SafeMigrateError as exc:
                first = first or exc
        raise first or SafeMigrateError(f"no maintenance database on {self._server()}")

    @contextlib.contextmanager
    def _admin(
        self, *, error: type[SafeMigrateError] = SafeMigrateError
    ) -> Iterator[psycopg.Connection[Any]]:
        with contextlib.closing(self._maintenance(error=error)) as admin:
            yield admin

    @contextlib.contextmanager
    def _open(self, scratch: Scratch | None) -> Iterator[psycopg.Connection[Any]]:
        if scratch is None and self.connection.in_atomic_block:
            # Inside a guarded migration's transaction: check what it sees (another session
            # would see the old state, and wait forever on the tables it has locked).
            self.connection.ensure_connection()
            yield self.connection.connection
            return
        name = self.live_name if scratch is None else self._own(scratch).name
        account = self._account(scratch)
        extra: dict[str, Any] = {"user": account[0], "password": account[1] or None} if account else {}
        conn = self._connect(name, **extra)
        try:
            yield conn
        finally:
            conn.close()

    def _tool(self, name: str, server_major: int, error: type[SafeMigrateError]) -> str:
        """The tool matching the server's major version (Debian's versioned path first)."""
        install = f"apt-get install postgresql-client-{server_major} (or your system's equivalent)"
        versioned = Path(f"/usr/lib/postgresql/{server_major}/bin/{name}")
        if versioned.is_file() and os.access(versioned, os.X_OK):
            return str(versioned)
        path = find_tool([name], error=error, install=install)
        found = re.search(r"(\d+)(?:\.(\d+))?", tool_version(path))
        if found:
            major = int(found[1]) if int(found[1]) >= 10 else int(found[1]) * 10 + int(found[2] or 0)
            if major < server_major:
                raise error(
                    f"{name} {found[0]} is older than the PostgreSQL {server_major} server and "
                    f"cannot read it: {install}"
                )
        return path

    def _tool_env(self, dbname: str) -> dict[str, str]:
        """Connection settings as libpq environment variables, as Django's ``dbshell`` does."""
        s = self.connection.settings_dict
        options = s.get("OPTIONS") or {}
        env = {"PGDATABASE": dbname, "PGAPPNAME": "safemigrate"}
        for key, var in (
            ("HOST", "PGHOST"),
            ("PORT", "PGPORT"),
            ("USER", "PGUSER"),
            ("PASSWORD", "PGPASSWORD"),
        ):
            if s.get(key):
                env[var] = str(s[key])
        for key, var in (
            ("passfile", "PGPASSFILE"),
            ("service", "PGSERVICE"),
            ("sslmode", "PGSSLMODE"),
            ("sslrootcert", "PGSSLROOTCERT"),
            ("sslcert", "PGSSLCERT"),
            ("sslkey", "PGSSLKEY"),
            ("options", "PGOPTIONS"),
            ("connect_timeout", "PGCONNECT_TIMEOUT"),
        ):
            if options.get(key):
                env[var] = str(options[key])
        return child_env(env)

    # --- snapshot -------------------------------------------------------------------------
    def dump_command(
        self, *, server_major: int, snapshot: str | None = None
    ) -> tuple[list[str], dict[str, str]]:
        """The pg_dump argument list and environment (the password only in the environment)."""
        args = [
            self._tool("pg_dump", server_major, BackupError),
            "--format=custom",
            "--compress=0",
            "--no-password",
            *(f"--exclude-table-data={table}" for table in SECRET_TABLES),
        ]
        if snapshot:
            args.append(f"--snapshot={snapshot}")
        return args, self._tool_env(self.live_name)

    def snapshot(
        self, sink: WritableStream, *, workdir: Path, progress: Progress | None = None
    ) -> SnapshotInfo:
        conn = self._connect(self.live_name, error=BackupError)
        try:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            row = conn.execute("SELECT pg_export_snapshot()").fetchone()
            snapshot_id = str(row[0]) if row else None
            args, env = self.dump_command(server_major=pgadmin.server_major(conn), snapshot=snapshot_id)
            result: dict[str, Any] = {}

            def count() -> None:
                # The dump's own snapshot: these are exactly the rows pg_dump writes.
                try:
                    result["counts"] = _count_rows(conn)
                    result["migrations"] = _migrations(conn)
                except psycopg.Error as exc:
                    result["errors"] = [f"table unreadable: {exc}".strip()]

            if progress:
                progress(f"pg_dump of {self.database_name()} started")
            counter = threading.Thread(target=count, name="safemigrate-count")
            counter.start()
            try:
                stream_out(
                    args,
                    env=env,
                    sink=sink,
                    error=BackupError,
                    what=f"pg_dump of {self.database_name()}",
                )
            finally:
                counter.join()
        finally:
            conn.close()
        counts = result.get("counts", {})
        return SnapshotInfo(
            row_counts={**counts, **{t: 0 for t in SECRET_TABLES if t in counts}},
            migrations=result.get("migrations", {}),
            integrity_errors=result.get("errors", []),
        )

    # --- restore (the sequence: ServerAdapter.restore_to_scratch) -------------------------
    def restore_command(
        self,
        scratch_name: str,
        *,
        server_major: int,
        account: tuple[str, str] | None = None,
        verify: bool = False,
    ) -> tuple[list[str], dict[str, str]]:
        """The pg_restore argument list and environment (the password only in the environment).

        ``verify``: a copy that is only checked, loaded without the archive's owners and grants
        (they matter only to a copy that becomes the live database); ``account``: loaded as that
        user (SAFEMIGRATE_SCRATCH_USER).
        """
        args = [
            self._tool("pg_restore", server_major, RestoreError),
            "--exit-on-error",
            "--no-password",
            f"--dbname={scratch_name}",
        ]
        env = self._tool_env(scratch_name)
        if verify or account:
            args += ["--no-owner", "--no-privileges"]
        if account:
            env["PGUSER"] = account[0]
            env.pop("PGPASSWORD", None)
            if account[1]:
                env["PGPASSWORD"] = account[1]
        return args, env

    def _live_extensions(self) -> set[str]:
        """Extensions of the live database (an archive may hold those); empty if it is gone."""
        try:
            with contextlib.closing(self._connect(self.live_name)) as conn:
                return {str(r[0]) for r in conn.execute("SELECT extname FROM pg_extension")}
        except (psycopg.Error, SafeMigrateError):
            return set()

    def _checked_toc(self, source: ReadableStream) -> bytes:
        """Read and check the archive's table of contents; the bytes read, for pg_restore.

        A crafted archive's SQL runs as the role that restores it: one whose entries reach
        outside the scratch database (roles, other databases, server files or programs) is
        refused before a scratch database exists.
        """
        first = source.read(CHUNK)
        if not first:
            raise RestoreError("the backup holds no data (empty or truncated)")
        if not first.startswith(PGDUMP_MAGIC):
            raise RestoreError("the backup does not contain a PostgreSQL pg_dump archive")
        pending = [first]

        def read(size: int) -> bytes:
            return pending.pop() if pending else source.read(size)

        try:
            entries, prefix = read_toc(read, CHUNK)
            problem = refusal(entries, extensions=self._live_extensions())
        except ArchiveRefused as exc:
            problem = str(exc)
        if problem:
            raise RestoreError(
                f"the backup was refused before loading: {problem}; nothing was loaded. A crafted "
                "or foreign archive? Use a backup this installation made"
            )
        return prefix

    def _new_scratch(
        self, source: ReadableStream, account: tuple[str, str] | None
    ) -> tuple[PostgresScratch, Loader]:
        with self._admin(error=RestoreError) as admin:
            major = pgadmin.server_major(admin)
            self._tool("pg_restore", major, RestoreError)  # a missing tool fails before any work
            prefix = self._checked_toc(source)
            name = self._scratch_name()
            try:
                pgadmin.create_like(admin, name, like=self.live_name, owner=account[0] if account else None)
            except psycopg.Error as exc:
                need = (
                    f"CREATEDB and membership of {account[0]} (GRANT {account[0]} TO the application's role)"
                    if account
                    else "CREATEDB"
                )
                raise RestoreError(
                    f"cannot create the scratch database {name} on {self._server()}: {exc}; the "
                    f"database user needs {need}. Nothing was written to the live database"
                ) from exc
        scratch = PostgresScratch(name, account)

        def load(progress: Progress | None) -> None:
            args, env = self.restore_command(
                scratch.name, server_major=major, account=account, verify=self.confine_scratch
            )

            def rest() -> Iterator[bytes]:
                while chunk := source.read(CHUNK):
                    yield chunk

            if progress:
                progress(f"pg_restore into {scratch.description}")
            stream_in(
                args,
                env=env,
                chunks=replay(prefix, rest()),
                error=RestoreError,
                what=f"pg_restore into {scratch.description}",
                hint="; it ran in that scratch database, not in the live one",
            )

        return scratch, load

    def _database_names(self, admin: psycopg.Connection[Any]) -> list[str]:
        return pgadmin.database_names(admin)

    def _in_use(self, admin: psycopg.Connection[Any], name: str) -> bool:
        return pgadmin.in_use(admin, name)

    def _drop_database(self, admin: psycopg.Connection[Any], name: str, *, force: bool) -> None:
        pgadmin.drop_database(admin, name, force=force)

    def swap_in(
        self, scratch: Scratch, *, progress: Progress | None = None, keep: bool = False
    ) -> str | None:
        name = self._own(scratch).name
        live, old = self.live_name, self._aside_name(keep=keep)
        with self._admin(error=RestoreError) as admin:
            try:
                exists = pgadmin.rename_in(admin, scratch=name, live=live, old=old)
            except psycopg.Error as exc:
                raise RestoreError(
                    f"cannot replace {live}: {exc}; the live database was not changed"
                ) from exc
            if exists and keep:
                pgadmin.allow_connections(admin, old, allow=True)
                return old
            if progress:
                progress(f"restored copy renamed to {live}; dropping the previous database")
            if exists:
                try:
                    pgadmin.drop_database(admin, old, force=True)
                except psycopg.Error as exc:
                    logger.warning("the previous database was kept as %s (%s); drop it by hand", old, exc)
        return None

    def kept_settings(self, kept: str) -> dict[str, Any]:
        return {**self.connection.settings_dict, "NAME": kept}

    # --- checks ---------------------------------------------------------------------------
    def integrity_errors(self, scratch: Scratch | None = None, *, level: str = "quick") -> list[str]:
        target = None if scratch is None else self._own(scratch)
        if target is not None:
            target.start_counting(lambda: self._count(target))
        try:
            with self._open(scratch) as conn:
                errors: list[str] = []
                for schema, table in _tables(conn):
                    # quick: every table answers; full: every heap page is read.
                    probe = "SELECT count(*) FROM {}" if level == "full" else "SELECT 1 FROM {} LIMIT 1"
                    try:
                        conn.execute(sql.SQL(probe).format(sql.Identifier(schema, table)))
                    except psycopg.Error as exc:
                        errors.append(f"table {_table_label(schema, table)} unreadable: {exc}".strip())
                errors += _amcheck_errors(conn, heapallindexed=level == "full")
        except Exception as exc:  # noqa: BLE001 - failing to open is a finding, not a crash
            return [f"database unreadable: {exc}"]
        return errors

    def _count(self, scratch: PostgresScratch | None) -> dict[str, int]:
        with self._open(scratch) as conn:
            return _count_rows(conn)

    def row_counts(self, scratch: Scratch | None = None) -> dict[str, int]:
        if scratch is None:
            return self._count(None)
        target = self._own(scratch)  # a scratch never changes: count it once
        if target.wait_counts() is None:
            target.counts = self._count(target)
        return dict(target.counts or {})

    def applied_migrations(self, scratch: Scratch | None = None) -> dict[str, list[str]]:
        with self._open(scratch) as conn:
            return _migrations(conn)

    # --- undoing a failed migration: DDL is transactional, except what must run outside one ---
    def rollback_kind(self, plan: MigrationPlan) -> str:
        return TRANSACTION if plan.all_atomic and not plan.needs_autocommit else RESTORE

    # --- consistent reads: one REPEATABLE READ snapshot ------------------------------------
    @contextlib.contextmanager
    def read_snapshot(self) -> Iterator[None]:
        nested = self.connection.in_atomic_block
        with transaction.atomic(using=self.alias):
            if not nested:  # must be the transaction's first statement
                with self.connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield

    # --- lock: an advisory lock on a dedicated connection -----------------------------------
    def _lock_key(self) -> int:
        return zlib.crc32(self.live_name.encode()) & 0x7FFFFFFF

    def _lock_session(self) -> psycopg.Connection[Any]:
        name = f"safemigrate pid {os.getpid()} on {socket.gethostname()}"
        return self._maintenance(application_name=name.encode()[:63].decode(errors="ignore"))

    def _take_lock(self, conn: psycopg.Connection[Any]) -> bool:
        if conn.info.server_version >= 140000:
            # A long migration must not lose its lock to an idle-session timeout.
            conn.execute("SET idle_session_timeout = 0")
        row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (_LOCK_CLASS, self._lock_key())).fetchone()
        return bool(row and row[0])

    def _lock_probe(self, *, migrating: bool) -> tuple[str, list[Any]]:
        return (
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = %s "
            "AND objid = %s AND objsubid = 2 AND granted)",
            [_MIGRATING_CLASS if migrating else _LOCK_CLASS, self._lock_key()],
        )

    def _mark_migrating(self, conn: psycopg.Connection[Any], *, on: bool) -> None:
        call = "pg_try_advisory_lock" if on else "pg_advisory_unlock"
        conn.execute(f"SELECT {call}(%s, %s)", (_MIGRATING_CLASS, self._lock_key()))

    def _describe_holder(self, admin: psycopg.Connection[Any]) -> str | None:
        row = admin.execute(
            "SELECT a.application_name, a.pid, a.client_addr, a.backend_start "
            "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s "
            "AND l.objsubid = 2 AND l.granted",
            (_LOCK_CLASS, self._lock_key()),
        ).fetchone()
        if row is None:
            return None
        app, pid, addr, since = row
        when = f", since {since.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if since else ""
        return f"{app or 'an unnamed session'}: server backend {pid} from {addr or 'a local socket'}{when}"
