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
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import socket
import threading
import time
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
from safemigrate.vendors.base import (
    RESTORE,
    SECRET_TABLES,
    TRANSACTION,
    Progress,
    Scratch,
    SnapshotInfo,
    VendorAdapter,
)

if TYPE_CHECKING:
    from safemigrate.plan import MigrationPlan
from safemigrate.vendors.external import (
    child_env,
    find_tool,
    scratch_account,
    scratch_name,
    stale_scratch,
    stream_in,
    stream_out,
    tool_version,
)
from safemigrate.vendors.pgarchive import ArchiveRefused, read_toc, refusal, replay

logger = logging.getLogger("safemigrate")

PGDUMP_MAGIC = b"PGDMP"
_LOCK_CLASS = 0x5AFE  # first key of pg_try_advisory_lock(int, int): "safemigrate"
_MIGRATING_CLASS = 0x5AFF  # held beside the lock only while a migration runs (the fence asks)
_MAINTENANCE_DATABASES = ("postgres", "template1")
_DJANGO_ONLY_PARAMS = ("cursor_factory", "context", "prepare_threshold")
_SWAP_ATTEMPTS = 10
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


class PostgresScratch(Scratch):
    """A scratch database on the same server."""

    def __init__(self, name: str, account: tuple[str, str] | None = None) -> None:
        self.name = name
        self.account = account
        """(user, password) it is loaded and read as (SAFEMIGRATE_SCRATCH_USER), or None: ours."""
        self.description = f"scratch database {name}"
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


def _as_scratch(scratch: Scratch) -> PostgresScratch:
    if not isinstance(scratch, PostgresScratch):
        raise TypeError(f"not a PostgreSQL scratch database: {scratch!r}")
    return scratch


def _derived_name(live: str, tag: str) -> str:
    """``<live>_sm<tag>_<random>``, within PostgreSQL's 63-byte identifier limit."""
    suffix = f"_sm{tag}_{secrets.token_hex(4)}"
    return live.encode()[: 63 - len(suffix)].decode(errors="ignore") + suffix


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


def _server_major(conn: psycopg.Connection[Any]) -> int:
    return conn.info.server_version // 10000


class Adapter(VendorAdapter):
    vendor = "postgresql"
    raw_extension = "pgdump"

    def __init__(self, connection: Any) -> None:
        super().__init__(connection)
        self._lock_conn: psycopg.Connection[Any] | None = None

    # --- identity and connections ---------------------------------------------------------
    @property
    def live_name(self) -> str:
        return str(self.connection.settings_dict["NAME"])

    def database_name(self) -> str:
        s = self.connection.settings_dict
        user = f"{s['USER']}@" if s.get("USER") else ""
        host = s.get("HOST") or "localhost"
        port = f":{s['PORT']}" if s.get("PORT") else ""
        return f"postgresql://{user}{host}{port}/{self.live_name}"

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

    def _server(self) -> str:
        s = self.connection.settings_dict
        return f"{s.get('HOST') or 'localhost'}:{s.get('PORT') or 5432}"

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
    def _open(self, scratch: Scratch | None) -> Iterator[psycopg.Connection[Any]]:
        if scratch is None and self.connection.in_atomic_block:
            # Inside a guarded migration's transaction: check what it sees (another session
            # would see the old state, and wait forever on the tables it has locked).
            self.connection.ensure_connection()
            yield self.connection.connection
            return
        name, extra = self.live_name, dict[str, Any]()
        if scratch is not None:
            target = _as_scratch(scratch)
            name = target.name
            if target.account:  # a confined copy is read as its own user: its code never runs as ours
                extra = {"user": target.account[0], "password": target.account[1] or None}
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
            args, env = self.dump_command(server_major=_server_major(conn), snapshot=snapshot_id)
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

    # --- restore --------------------------------------------------------------------------
    def _create_scratch(self, admin: psycopg.Connection[Any], *, owner: str | None = None) -> str:
        """A new empty database with the live database's encoding, locale, tablespace and owner
        (``owner``: owned by that role instead, the confined scratch user)."""
        name = scratch_name(self.live_name, limit=63)
        major = _server_major(admin)
        locale = ", d.daticulocale" if major in (15, 16) else ", d.datlocale" if major >= 17 else ""
        provider = ", d.datlocprovider" if major >= 15 else ""
        row = admin.execute(
            "SELECT pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, t.spcname, "  # noqa: S608
            f"r.rolname, r.rolname = current_user {provider}{locale} FROM pg_database d "
            "JOIN pg_tablespace t ON t.oid = d.dattablespace JOIN pg_roles r ON r.oid = d.datdba "
            "WHERE d.datname = %s",
            (self.live_name,),
        ).fetchone()
        query = sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
        if row is not None:  # else the live database is gone: server defaults
            query += sql.SQL(" ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
                sql.Literal(row[0]), sql.Literal(row[1]), sql.Literal(row[2])
            )
            if row[3] != "pg_default":  # named only when needed: its owner may lack CREATE on it
                query += sql.SQL(" TABLESPACE {}").format(sql.Identifier(row[3]))
            if not row[5] and not owner:
                query += sql.SQL(" OWNER {}").format(sql.Identifier(row[4]))
            if major >= 15 and row[6] == "i":
                query += sql.SQL(" LOCALE_PROVIDER icu ICU_LOCALE {}").format(sql.Literal(row[7]))
        if owner:
            query += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        try:
            admin.execute(query)
        except psycopg.Error as exc:
            need = (
                f"CREATEDB and membership of {owner} (GRANT {owner} TO the application's role)"
                if owner
                else "CREATEDB"
            )
            raise RestoreError(
                f"cannot create the scratch database {name} on {self._server()}: {exc}; the "
                f"database user needs {need}. Nothing was written to the live database"
            ) from exc
        return name

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

    def restore_to_scratch(
        self, source: ReadableStream, *, workdir: Path, progress: Progress | None = None
    ) -> Scratch:
        account = scratch_account() if self.confine_scratch else None
        with contextlib.closing(self._maintenance(error=RestoreError)) as admin:
            major = _server_major(admin)
            self._tool("pg_restore", major, RestoreError)  # a missing tool fails before any work
            prefix = self._checked_toc(source)
            scratch = PostgresScratch(
                self._create_scratch(admin, owner=account[0] if account else None), account
            )
        logger.info("created %s", scratch.description)
        try:
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
        except BaseException:
            self.drop_scratch(scratch)
            raise
        return scratch

    def drop_scratch(self, scratch: Scratch) -> None:
        scratch = _as_scratch(scratch)
        with contextlib.suppress(Exception):
            scratch.wait_counts()
        try:
            with contextlib.closing(self._maintenance()) as admin:
                self._drop_database(admin, scratch.name)
            logger.info("dropped %s", scratch.description)
        except (psycopg.Error, SafeMigrateError) as exc:
            logger.warning("could not drop %s (%s); drop it by hand", scratch.description, exc)

    def sweep_scratch(self, *, now: float | None = None) -> list[str]:
        names = []
        with contextlib.closing(self._maintenance()) as admin:
            listed = [str(r[0]) for r in admin.execute("SELECT datname FROM pg_database")]
            for name in stale_scratch(listed, self.live_name, limit=63, now=now):
                # Never one in use (a verification's pg_restore or check); no FORCE: a connection
                # arriving meanwhile makes the DROP fail, and the database is kept.
                busy = admin.execute("SELECT 1 FROM pg_stat_activity WHERE datname = %s", (name,))
                if busy.fetchone():
                    continue
                try:
                    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
                except psycopg.Error as exc:
                    logger.warning("could not drop the leftover scratch database %s: %s", name, exc)
                    continue
                logger.warning("dropped the scratch database %s, left behind by an interrupted run", name)
                names.append(name)
        return names

    def _drop_database(self, admin: psycopg.Connection[Any], name: str) -> None:
        if _server_major(admin) >= 13:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            return
        self._terminate(admin, name, why=f"to drop {name}")
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))

    def _terminate(self, admin: psycopg.Connection[Any], name: str, *, why: str) -> int:
        """Terminate every other connection to database ``name``, saying so in the log."""
        wait = ", 5000" if _server_major(admin) >= 14 else ""
        rows = admin.execute(
            "SELECT pid, usename, application_name, client_addr, "  # noqa: S608
            f"pg_terminate_backend(pid{wait}) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
        if rows:
            who = ", ".join(
                f"pid {pid} ({app or 'no application name'}, user {user}, from {addr or 'a local socket'})"
                for pid, user, app, addr, _ in rows
            )
            logger.warning("terminating %d connection(s) to %s %s: %s", len(rows), name, why, who)
        return len(rows)

    def _carry_over_properties(self, admin: psycopg.Connection[Any], scratch: str) -> None:
        """Database-level settings, grants and connection limit, which pg_dump does not carry."""
        live = self.live_name
        target = sql.Identifier(scratch)
        row = admin.execute(
            "SELECT datacl IS NOT NULL, datconnlimit FROM pg_database WHERE datname = %s", (live,)
        ).fetchone()
        if row is None:
            return
        has_acl, connlimit = row
        statements: list[sql.Composed | sql.SQL] = []
        if connlimit != -1:
            statements.append(
                sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}").format(target, sql.Literal(connlimit))
            )
        if has_acl:
            statements.append(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(target))
            for grantee, privilege, grantable in admin.execute(
                "SELECT r.rolname, a.privilege_type, a.is_grantable FROM pg_database d, "
                "aclexplode(d.datacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee "
                "WHERE d.datname = %s AND a.grantee <> d.datdba",
                (live,),
            ).fetchall():
                statements.append(
                    sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                        sql.SQL(privilege),
                        target,
                        sql.Identifier(grantee) if grantee else sql.SQL("PUBLIC"),
                        sql.SQL(" WITH GRANT OPTION" if grantable else ""),
                    )
                )
        for statement in statements:
            try:
                admin.execute(statement)
            except psycopg.Error as exc:
                logger.warning(
                    "could not carry %s over to the restored database: %s",
                    statement.as_string(admin),
                    exc,
                )
        settings = admin.execute(
            "SELECT r.rolname, s.setconfig FROM pg_db_role_setting s "
            "JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole "
            "WHERE d.datname = %s",
            (live,),
        ).fetchall()
        for role, configs in settings:
            for item in configs or []:
                name, _, value = item.partition("=")
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name):
                    continue
                alter = (
                    sql.SQL("ALTER ROLE {} IN DATABASE {}").format(sql.Identifier(role), target)
                    if role
                    else sql.SQL("ALTER DATABASE {}").format(target)
                )
                try:
                    with admin.transaction():
                        # The value exactly as stored, parsed by the server as it was then.
                        admin.execute("SELECT set_config(%s, %s, true)", (name, value))
                        admin.execute(alter + sql.SQL(" SET {} FROM CURRENT").format(sql.SQL(name)))
                except psycopg.Error as exc:
                    logger.warning("could not carry the database setting %s over: %s", name, exc)

    def swap_in(
        self, scratch: Scratch, *, progress: Progress | None = None, keep: bool = False
    ) -> str | None:
        scratch = _as_scratch(scratch)
        live, old = self.live_name, _derived_name(self.live_name, "failed" if keep else "old")
        with contextlib.closing(self._maintenance(error=RestoreError)) as admin:
            try:
                exists = self._rename_in(admin, scratch.name, live, old)
            except psycopg.Error as exc:
                raise RestoreError(
                    f"cannot replace {live}: {exc}; the live database was not changed"
                ) from exc
            if exists and keep:
                self._allow_connections(admin, old, allow=True)
                return old
            if progress:
                progress(f"restored copy renamed to {live}; dropping the previous database")
            if exists:
                try:
                    self._drop_database(admin, old)
                except psycopg.Error as exc:
                    logger.warning("the previous database was kept as %s (%s); drop it by hand", old, exc)
        return None

    def kept_settings(self, kept: str) -> dict[str, Any]:
        return {**self.connection.settings_dict, "NAME": kept}

    def drop_kept(self, kept: str) -> None:
        with contextlib.closing(self._maintenance()) as admin:
            admin.execute("SET statement_timeout = 0")  # DROP DATABASE waits for a checkpoint
            self._drop_database(admin, kept)

    def _allow_connections(self, admin: psycopg.Connection[Any], name: str, *, allow: bool) -> bool:
        """ALTER DATABASE ... ALLOW_CONNECTIONS; False (logged) where this role may not."""
        try:
            admin.execute(
                sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
                    sql.Identifier(name), sql.SQL("true" if allow else "false")
                )
            )
        except psycopg.Error as exc:
            logger.warning("cannot set ALLOW_CONNECTIONS on %s (%s)", name, exc)
            return False
        return True

    def _rename_in(self, admin: psycopg.Connection[Any], scratch: str, live: str, old: str) -> bool:
        """live -> old and scratch -> live in one transaction; True if there was a live database.

        New connections to the live database are refused for the swap (ALLOW_CONNECTIONS false),
        so an application that reconnects at once (any pool) cannot keep it in use.
        """
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (live,)).fetchone()
        if exists:
            self._carry_over_properties(admin, scratch)
        fenced = bool(exists) and self._allow_connections(admin, live, allow=False)
        try:
            for attempt in range(_SWAP_ATTEMPTS):
                if exists:
                    self._terminate(admin, live, why="so the restored copy can replace it")
                self._terminate(admin, scratch, why="so it can be renamed")
                try:
                    # One transaction: the live name always names a complete database.
                    with admin.transaction():
                        if exists:
                            admin.execute(
                                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                                    sql.Identifier(live), sql.Identifier(old)
                                )
                            )
                        admin.execute(
                            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                                sql.Identifier(scratch), sql.Identifier(live)
                            )
                        )
                    fenced = False  # the refusing database is now ``old``; the new live one allows
                    return bool(exists)
                except psycopg.errors.ObjectInUse as exc:
                    if attempt == _SWAP_ATTEMPTS - 1:
                        raise RestoreError(
                            f"cannot replace {live}: new connections keep arriving ({exc}); stop "
                            "the application and restore again. The live database was not changed"
                        ) from exc
                    time.sleep(0.2 * (attempt + 1))
        finally:
            if fenced:
                self._allow_connections(admin, live, allow=True)
        return bool(exists)

    # --- checks ---------------------------------------------------------------------------
    def integrity_errors(self, scratch: Scratch | None = None, *, level: str = "quick") -> list[str]:
        target = None if scratch is None else _as_scratch(scratch)
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
        target = _as_scratch(scratch)  # a scratch never changes: count it once
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

    def try_lock(self) -> bool:
        if self._lock_conn is not None:
            return True
        name = f"safemigrate pid {os.getpid()} on {socket.gethostname()}"
        conn = self._maintenance(application_name=name.encode()[:63].decode(errors="ignore"))
        try:
            if conn.info.server_version >= 140000:
                # A long migration must not lose its lock to an idle-session timeout.
                conn.execute("SET idle_session_timeout = 0")
            row = conn.execute(
                "SELECT pg_try_advisory_lock(%s, %s)", (_LOCK_CLASS, self._lock_key())
            ).fetchone()
        except BaseException:
            conn.close()
            raise
        if not row or not row[0]:
            conn.close()
            return False
        self._lock_conn = conn
        return True

    def unlock(self) -> None:
        conn, self._lock_conn = self._lock_conn, None
        if conn is not None:
            conn.close()  # ending the session releases the lock

    def lock_is_held(self, lock_class: int = _LOCK_CLASS) -> bool:
        with self.connection.cursor() as cursor:  # Django's: no new connection per request
            cursor.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = %s "
                "AND objid = %s AND objsubid = 2 AND granted)",
                [lock_class, self._lock_key()],
            )
            return bool(cursor.fetchone()[0])

    def mark_migrating(self, *, on: bool) -> None:
        """A second advisory lock on the lock's own session: it ends with that session."""
        if self._lock_conn is None:
            return
        call = "pg_try_advisory_lock" if on else "pg_advisory_unlock"
        with contextlib.suppress(psycopg.Error):  # the fence then falls back to "not migrating"
            self._lock_conn.execute(f"SELECT {call}(%s, %s)", (_MIGRATING_CLASS, self._lock_key()))

    def migration_running(self) -> bool:
        return self.lock_is_held(_MIGRATING_CLASS)

    def lock_holder(self) -> str | None:
        try:
            with contextlib.closing(self._maintenance()) as conn:
                row = conn.execute(
                    "SELECT a.application_name, a.pid, a.client_addr, a.backend_start "
                    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s "
                    "AND l.objsubid = 2 AND l.granted",
                    (_LOCK_CLASS, self._lock_key()),
                ).fetchone()
        except (psycopg.Error, SafeMigrateError):
            return None
        if row is None:
            return None
        app, pid, addr, since = row
        when = f", since {since.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if since else ""
        return f"{app or 'an unnamed session'}: server backend {pid} from {addr or 'a local socket'}{when}"
