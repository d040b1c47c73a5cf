"""SQLite: snapshots with the online backup API, restores through the same API into the live file.

Never a plain copy of a live WAL database, never truncate-and-overwrite: the backup API writes pages
through SQLite's own locking, so other processes (web, worker) see the old or the new database,
never a mix, and keep working on the same file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import shutil
import socket
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError as DjangoDatabaseError
from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from safemigrate.constants import CHUNK
from safemigrate.exceptions import BackupError, LockTimeout, RestoreError
from safemigrate.files import fsync_dir, remove_soon
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

logger = logging.getLogger("safemigrate")
SQLITE_MAGIC = b"SQLite format 3\x00"
"""The first bytes of every SQLite database file: a restore refuses anything else."""


class SQLiteScratch(Scratch):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = str(path)


def _own(scratch: Scratch) -> SQLiteScratch:
    if not isinstance(scratch, SQLiteScratch):
        raise TypeError(f"not an SQLite scratch copy: {scratch!r}")
    return scratch


def _is_memory(name: str) -> bool:
    return not name or name == ":memory:" or "mode=memory" in name


def _user_tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall()
    return [r[0] for r in rows]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _integrity_errors(
    conn: sqlite3.Connection, level: str, counts: dict[str, int] | None = None
) -> list[str]:
    """The full check: structure (quick or integrity_check), CHECK and foreign-key rules, every
    table read; its row counts go into ``counts`` (one pass over the rows serves both)."""
    try:
        pragma = "integrity_check" if level == "full" else "quick_check"
        rows = [r[0] for r in conn.execute(f"PRAGMA {pragma}").fetchall()]
        errors = [] if rows == ["ok"] else [str(r) for r in rows]
        for table, rowid, parent, _fkid in conn.execute("PRAGMA foreign_key_check").fetchall():
            errors.append(f"foreign key violation: {table} row {rowid} -> missing {parent}")
            if len(errors) > 50:
                break
        _count_rows(conn, counts)
    except sqlite3.DatabaseError as exc:
        return [f"database unreadable: {exc}"]
    return errors


def _copy_errors(conn: sqlite3.Connection, counts: dict[str, int] | None = None) -> list[str]:
    """Is this a sound database file: every page and row well-formed, every table readable?

    ``quick_check`` without its CHECK-constraint pass, and no foreign-key check: those are rules
    about the data, which a faithful copy keeps as they are (the pre-migration check enforces
    them on the live database), and on millions of rows they cost more than the copy itself.
    Row counts go into ``counts``.
    """
    try:
        conn.execute("PRAGMA ignore_check_constraints=ON")
        rows = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
        errors = [] if rows == ["ok"] else [str(r) for r in rows]
        _count_rows(conn, counts)
    except sqlite3.DatabaseError as exc:
        return [f"database unreadable: {exc}"]
    return errors


def _count_rows(conn: sqlite3.Connection, counts: dict[str, int] | None) -> None:
    """Read every table (an unreadable one raises), recording its row count."""
    found = {} if counts is None else counts
    for table in _user_tables(conn):
        found[table] = conn.execute(f"SELECT COUNT(*) FROM {_quote(table)}").fetchone()[0]  # noqa: S608


def _connect_copy(path: Path) -> sqlite3.Connection:
    """A connection to a private copy (snapshot, scratch), usable from a checker thread.

    Not memory-mapped: mmap is a little faster, but every page read counts in the process's
    resident memory, which must stay small and flat however large the database.
    """
    return sqlite3.connect(path, check_same_thread=False)


class _Check:
    """Checks one database on its own connection in a thread; ``cancel()`` interrupts it.

    ``level`` None: is it a sound copy (``_copy_errors``); else the full check at that level
    (``_integrity_errors``: the pre-migration check of the live database).
    """

    def __init__(self, conn: sqlite3.Connection, level: str | None = None) -> None:
        self.conn, self.level = conn, level
        self.result: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._run, name="safemigrate-check", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            counts: dict[str, int] = {}
            if self.level is None:
                self.result["errors"] = _copy_errors(self.conn, counts)
            else:
                self.result["errors"] = _integrity_errors(self.conn, self.level, counts)
            self.result["counts"] = counts
            self.result["migrations"] = _migrations(self.conn)
        except sqlite3.DatabaseError as exc:
            self.result["errors"] = [f"snapshot unreadable: {exc}"]
        finally:
            with contextlib.suppress(sqlite3.Error):
                self.conn.rollback()
            self.conn.close()

    def info(self) -> SnapshotInfo:
        self.thread.join()
        return SnapshotInfo(
            row_counts=self.result.get("counts", {}),
            migrations=self.result.get("migrations", {}),
            integrity_errors=self.result.get("errors", ["the check did not finish"]),
        )

    def errors(self) -> list[str]:
        return self.info().integrity_errors

    def cancel(self) -> None:
        if self.thread.is_alive():
            with contextlib.suppress(sqlite3.Error):
                self.conn.interrupt()
        self.thread.join()


_GATED_STEP = 16384
"""Pages per step of a gated copy (64 MiB at 4 KiB pages)."""


def _copy_gated(src: sqlite3.Connection, live: sqlite3.Connection, before_commit: Callable[[], None]) -> None:
    """Copy ``src`` into ``live`` with the backup API, calling ``before_commit()`` first.

    The copy runs in steps inside one write transaction on ``live``, which only the last step
    commits; ``before_commit()`` runs before that step, and if it raises the backup is finished
    early, which rolls the whole copy back: the live database is left exactly as it was.
    """
    if src.execute("PRAGMA page_count").fetchone()[0] <= _GATED_STEP:
        before_commit()
        src.backup(live)
        return
    gated = False

    def step(status: int, remaining: int, total: int) -> None:
        nonlocal gated
        if not gated and remaining <= _GATED_STEP:  # the next step copies the rest and commits
            gated = True
            before_commit()

    src.backup(live, pages=_GATED_STEP, progress=step)


def _empty_secret_tables(conn: sqlite3.Connection) -> None:
    """Delete the rows of SECRET_TABLES in a snapshot, overwriting them on disk (secure_delete)."""
    conn.execute("PRAGMA secure_delete=ON")
    present = set(_user_tables(conn))
    with conn:
        for table in SECRET_TABLES:
            if table in present:
                conn.execute(f"DELETE FROM {_quote(table)}")  # noqa: S608 - a constant name


def _row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {
        t: conn.execute(f"SELECT COUNT(*) FROM {_quote(t)}").fetchone()[0]  # noqa: S608
        for t in _user_tables(conn)
    }


def _migrations(conn: sqlite3.Connection) -> dict[str, list[str]]:
    try:
        rows = conn.execute("SELECT app, name FROM django_migrations ORDER BY app, id").fetchall()
    except sqlite3.OperationalError:
        return {}
    applied: dict[str, list[str]] = {}
    for app, name in rows:
        applied.setdefault(app, []).append(name)
    return applied


def _private_file(path: Path) -> Path:
    """``path`` created new and 0600 (SQLite would make it 0644): it will hold a plaintext copy."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    return path


def _stream_file(path: Path, sink: WritableStream) -> None:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            sink.write(chunk)


@dataclasses.dataclass(frozen=True)
class _Copy:
    """What copying the live database left: the check that stands for the copy, the live
    database's own full check (when it cannot stand for the copy), or the pre-check's findings."""

    live_check: _Check | None = None
    precheck: _Check | None = None
    live_errors: list[str] = dataclasses.field(default_factory=list)


def _standing_checks(
    live: sqlite3.Connection, started: tuple[_Check, int] | None, level: str | None
) -> _Copy:
    """Which of the live check's roles still hold now that the copy is taken."""
    if started is None:
        return _Copy()
    check, version = started
    if live.execute("PRAGMA data_version").fetchone()[0] == version:
        return _Copy(live_check=check)  # nobody committed: it checked exactly what was copied
    if level is not None:
        return _Copy(precheck=check)  # still the live database's check; the copy gets its own
    check.cancel()
    return _Copy()


def _snapshot_info(
    copy: _Copy, check: _Check, tmp: Path, *, checks: list[_Check], level: str | None
) -> SnapshotInfo:
    """The snapshot's findings once its check is done: the pre-check's failure first, a live
    check's failure confirmed on the copy itself, secret tables counted as emptied."""
    info = check.info()
    if level is not None and (copy.precheck or copy.live_check):
        live_errors = (copy.precheck or check).errors()
        if live_errors:  # the pre-check failed: the live database, not the copy, is refused
            return SnapshotInfo(live_errors=live_errors)
    if info.integrity_errors and check is copy.live_check:
        # Refuse on the evidence of the copy itself, never on the live database's alone.
        confirm = _Check(_connect_copy(tmp))
        checks.append(confirm)
        info = confirm.info()
    emptied = {t: 0 for t in SECRET_TABLES if t in info.row_counts}
    return dataclasses.replace(info, row_counts={**info.row_counts, **emptied})


class Adapter(VendorAdapter):
    vendor = "sqlite"
    raw_extension = "sqlite3"

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        super().__init__(connection)
        self._lock_fd: int | None = None
        self._migrating_fd: int | None = None

    # --- identity -------------------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        name = str(self.connection.settings_dict.get("NAME") or "")
        return None if _is_memory(name) else Path(name).resolve()

    def database_name(self) -> str:
        return str(self.path or ":memory:")

    def default_backup_dir(self) -> Path | None:
        """``backups/`` beside the database file."""
        name = str(self.connection.settings_dict.get("NAME") or "")
        return Path(name).resolve().parent / "backups" if name and not name.startswith(":memory:") else None

    def _live(self) -> sqlite3.Connection:
        """Django's own sqlite3 connection (so the test database and settings apply)."""
        self.connection.ensure_connection()
        return self.connection.connection  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def _open(self, scratch: Scratch | None) -> Any:
        if scratch is None:
            yield self._live()
            return
        scratch = _own(scratch)
        conn = _connect_copy(scratch.path)
        try:
            yield conn
        finally:
            conn.close()

    # --- snapshot -------------------------------------------------------------------------
    def snapshot(
        self, sink: WritableStream, *, workdir: Path, progress: Progress | None = None
    ) -> SnapshotInfo:
        return self._snapshot(sink, workdir=workdir, progress=progress, level=None)

    def precheck_snapshot(
        self, sink: WritableStream, *, workdir: Path, level: str, progress: Progress | None = None
    ) -> SnapshotInfo:
        """The pre-migration check folded into the snapshot's own check of the live database.

        The live database gets the full check (CHECK and foreign-key rules included) on the
        core the copy leaves idle, and one count of its rows serves the check, the manifest and
        the snapshot's check; when that check also stands for the copy (nobody committed in
        between), nothing is read twice.
        """
        return self._snapshot(sink, workdir=workdir, progress=progress, level=level)

    def _snapshot(
        self, sink: WritableStream, *, workdir: Path, progress: Progress | None, level: str | None
    ) -> SnapshotInfo:
        """Copy the live database into a private file, stream that into ``sink``, and check it
        on the other core meanwhile (or let the live database's check stand for it)."""
        self._ensure_room(workdir)
        # Created inside the try, so a signal right after it still removes it (the name is this
        # process's own: pid and nanoseconds).
        tmp = workdir / f".snapshot-{os.getpid()}-{time.time_ns()}.sqlite3"
        checks: list[_Check] = []
        try:
            _private_file(tmp)
            copy = self._copy_live(tmp, workdir=workdir, level=level, checks=checks)
            if copy.live_errors:
                return SnapshotInfo(live_errors=copy.live_errors)
            if progress:
                progress(f"snapshot taken ({tmp.stat().st_size:,} bytes); compressing and checking")
            # Otherwise check the snapshot file while it is compressed: both release the GIL.
            check = copy.live_check or _Check(_connect_copy(tmp))
            checks.append(check)
            _stream_file(tmp, sink)
            return _snapshot_info(copy, check, tmp, checks=checks, level=level)
        finally:
            for started_check in checks:
                started_check.cancel()
            remove_soon(*(Path(f"{tmp}{suffix}") for suffix in ("", "-journal", "-wal", "-shm")))

    def _ensure_room(self, workdir: Path) -> None:
        """The raw snapshot needs the database's size in the backup folder for a moment."""
        if self.path is None or not self.path.exists():
            return
        needed = self.path.stat().st_size
        free = shutil.disk_usage(workdir).free
        if free < needed * 1.1:
            raise BackupError(
                f"backup failed: disk full: {workdir} has {free:,} bytes free and the backup "
                f"needs about {needed:,}; nothing was changed. Free space (cleanupbackups) or "
                "set SAFEMIGRATE_BACKUP_DIR to a larger disk"
            )

    def _copy_live(self, tmp: Path, *, workdir: Path, level: str | None, checks: list[_Check]) -> _Copy:
        """Copy what is committed into ``tmp``, with the live database checked as the copy reads.

        The live check runs on the core the copy leaves idle, in a read transaction opened just
        before it; it stands for the copy only if nobody committed in between (data_version).
        A damaged live database, when ``level`` asks for the pre-check, is its finding, not an
        error.
        """
        started: tuple[_Check, int] | None = None
        try:
            live = self._live()
            started = self._start_live_check(live, level)
            if started is not None:
                checks.append(started[0])
            elif level is not None:  # no second connection: the pre-check comes first
                errors = _integrity_errors(live, level)
                if errors:
                    return _Copy(live_errors=errors)
            self._copy_committed(live, tmp)
            return _standing_checks(live, started, level)
        except (sqlite3.DatabaseError, DjangoDatabaseError) as exc:
            if level is not None:  # a damaged database: say so as the pre-check does
                errors = started[0].errors() if started else self.integrity_errors(level=level)
                if errors:
                    return _Copy(live_errors=errors)
            what = "disk full" if "full" in str(exc) else str(exc)
            raise BackupError(
                f"backup failed: {what} while copying {self.database_name()} into {workdir}; "
                "nothing was changed. Free space there (cleanupbackups) or set "
                "SAFEMIGRATE_BACKUP_DIR; if the database itself is damaged, restore a "
                "backup (restore --list)"
            ) from exc

    def _copy_committed(self, live: sqlite3.Connection, tmp: Path) -> None:
        """The backup API copy into ``tmp``, secret tables emptied, as a self-contained file."""
        source, own_source = live, False
        if live.in_transaction:
            # SQLite's backup from a connection with uncommitted writes never finishes:
            # copy what is committed through a connection of our own instead.
            if self.path is None:
                raise BackupError(
                    "cannot back up an in-memory database inside an open transaction; "
                    "run the backup outside atomic()"
                )
            source, own_source = sqlite3.connect(self.path, timeout=20), True
        dst = sqlite3.connect(tmp)
        try:
            dst.execute("PRAGMA synchronous=OFF")
            source.backup(dst)
            _empty_secret_tables(dst)
            # A self-contained file: no -wal/-shm needed to read it.
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
            if own_source:
                source.close()

    def _start_live_check(self, live: sqlite3.Connection, level: str | None) -> tuple[_Check, int] | None:
        """A check of the live file in a read transaction opened now, and ``data_version`` then.

        If ``data_version`` of ``live`` is the same after the copy, no other connection
        committed in between, so the check saw exactly the pages the copy read. None when that
        cannot be arranged (in-memory database, open transaction, read-only open fails).
        """
        if self.path is None or live.in_transaction:
            return None
        try:
            # Read-only, unless the full check runs: SQLite skips CHECK constraints on a read-only
            # connection. Either way this connection only ever reads.
            uri = self.path.as_uri() + ("?mode=ro" if level is None else "")
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        except sqlite3.Error:
            return None
        try:
            version = live.execute("PRAGMA data_version").fetchone()[0]
            conn.execute("BEGIN")
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # the read starts here
        except sqlite3.Error:
            conn.close()
            return None
        return _Check(conn, level), version

    # --- restore --------------------------------------------------------------------------
    def restore_to_scratch(
        self, source: ReadableStream, *, workdir: Path, progress: Progress | None = None
    ) -> Scratch:
        path = workdir / f".restore-{os.getpid()}-{time.time_ns()}.sqlite3"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as f:
                copy_to = getattr(source, "copy_to", None)  # a BackupReader: its fast path
                if copy_to is not None:
                    copy_to(f)
                else:
                    first = True
                    while chunk := source.read(CHUNK):
                        if first and not chunk.startswith(SQLITE_MAGIC):
                            raise RestoreError("the backup does not contain an SQLite database")
                        first = False
                        f.write(chunk)
            with path.open("rb") as f:
                head = f.read(len(SQLITE_MAGIC))
            if not head:
                raise RestoreError("the backup holds no data (empty or truncated)")
            if head != SQLITE_MAGIC:
                raise RestoreError("the backup does not contain an SQLite database")
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return SQLiteScratch(path)

    def drop_scratch(self, scratch: Scratch) -> None:
        scratch = _own(scratch)
        remove_soon(*(Path(f"{scratch.path}{suffix}") for suffix in ("", "-journal", "-wal", "-shm")))

    def swap_in(
        self, scratch: Scratch, *, progress: Progress | None = None, keep: bool = False
    ) -> str | None:
        return self._swap_in(scratch, progress=progress, before_commit=None, keep=keep)

    def swap_in_checked(
        self,
        scratch: Scratch,
        *,
        check: Callable[[], None],
        progress: Progress | None = None,
        keep: bool = False,
    ) -> str | None:
        """Run ``check`` in a thread while the pages are copied; they commit only if it passes."""
        outcome: list[BaseException | None] = []

        def run() -> None:
            try:
                check()
            except BaseException as exc:  # noqa: BLE001 - raised in the swapping thread
                outcome.append(exc)
            else:
                outcome.append(None)

        checker = threading.Thread(target=run, name="safemigrate-check", daemon=True)
        checker.start()

        def before_commit() -> None:
            checker.join()
            if outcome and outcome[0] is not None:
                raise outcome[0]

        try:
            return self._swap_in(scratch, progress=progress, before_commit=before_commit, keep=keep)
        finally:
            checker.join()

    def _swap_in(
        self,
        scratch: Scratch,
        *,
        progress: Progress | None,
        before_commit: Callable[[], None] | None,
        keep: bool = False,
    ) -> str | None:
        scratch = _own(scratch)
        kept = None
        try:
            if keep and self.path is not None and self._wal():
                try:
                    kept = self._copy_keeping(scratch, before_commit)
                except (sqlite3.DatabaseError, DjangoDatabaseError) as exc:  # rolled back: as below
                    logger.warning("restore keeping the copy inside its write lock failed (%s)", exc)
                if kept is not None:
                    if progress:
                        progress("database restored")
                    return kept
            if keep and self.path is not None:
                try:
                    kept = self._keep_copy(self._live())
                except (OSError, sqlite3.DatabaseError, DjangoDatabaseError) as exc:
                    raise RestoreError(
                        f"cannot keep a copy of {self.path} before restoring ({exc}); the live "
                        "database was not changed. Free space beside it and restore again"
                    ) from exc
            for attempt in (1, 2):
                try:
                    self._copy_into_live(scratch, before_commit)
                    break
                except (sqlite3.DatabaseError, DjangoDatabaseError) as exc:
                    if self.path is None:
                        raise RestoreError(f"restore into the in-memory database failed: {exc}") from exc
                    if before_commit is not None:
                        before_commit()
                    if attempt == 1 and self._file_is_sound():
                        # Django's connection broke (closed under us), not the file: a healthy
                        # database is never moved aside; copy again through a new connection.
                        logger.warning("restore through Django's connection failed (%s); retrying", exc)
                        with contextlib.suppress(Exception):
                            self.connection.close()
                        self.connection.connection = None
                        continue
                    # The live file is not a database SQLite can open (corrupt header, say).
                    logger.warning(
                        "live database %s cannot be written through SQLite (%s): replacing the file; "
                        "restart any other process that has it open",
                        self.path,
                        exc,
                    )
                    self._replace_file(scratch.path)
                    break
        finally:
            self.drop_scratch(scratch)
        if progress:
            progress("database restored")
        return kept

    def _wal(self) -> bool:
        try:
            return str(self._live().execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal"
        except (sqlite3.Error, DjangoDatabaseError):
            return False

    def _copy_keeping(self, scratch: SQLiteScratch, before_commit: Callable[[], None] | None) -> str | None:
        """The restore's copy, with the failed database kept from inside its write transaction.

        After the first step the copy holds the write lock and has committed nothing, so a
        reader sees the failed database with every write any connection committed, and no
        writer can commit until the restore does: no write falls between the kept copy and the
        restore. WAL only (there readers go on beside a writer). None: too small to pause in.
        """
        live = self._live()
        if live.in_transaction:
            raise RestoreError("cannot restore inside a transaction; run it outside atomic()")
        src = sqlite3.connect(scratch.path)
        kept: list[str] = []
        try:
            total = src.execute("PRAGMA page_count").fetchone()[0]
            if total < 2:
                return None
            pages = min(_GATED_STEP, total // 2)  # never all in one step: the copy comes between
            gated = before_commit is None

            def step(status: int, remaining: int, count: int) -> None:
                nonlocal gated
                if not kept:
                    kept.append(self._keep_committed())
                if not gated and remaining <= pages and before_commit is not None:
                    gated = True
                    before_commit()

            src.backup(live, pages=pages, progress=step)
        except BaseException:
            for path in kept:  # the restore was rolled back: the live database is the failed one
                self.drop_kept(path)
            raise
        finally:
            src.close()
        return kept[0] if kept else None

    def _keep_committed(self) -> str:
        """A copy of what is committed in the live file, read through a connection of our own."""
        assert self.path is not None  # noqa: S101 - callers check
        try:
            reader = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, timeout=0)
            try:
                return self._keep_copy(reader)
            finally:
                reader.close()
        except (OSError, sqlite3.Error) as exc:
            raise RestoreError(
                f"cannot keep a copy of {self.path} before restoring ({exc}); the live "
                "database was not changed. Free space beside it and restore again"
            ) from exc

    def _copy_into_live(self, scratch: SQLiteScratch, before_commit: Callable[[], None] | None) -> None:
        live = self._live()
        if live.in_transaction:
            raise RestoreError("cannot restore inside a transaction; run it outside atomic()")
        src = sqlite3.connect(scratch.path)
        try:
            # One write transaction on the live file, so it is all or nothing.
            if before_commit is None:
                src.backup(live)
            else:
                _copy_gated(src, live, before_commit)
        finally:
            src.close()

    def _file_is_sound(self) -> bool:
        """Does the live file open and read as a database through a connection of our own?"""
        if self.path is None or not self.path.is_file():
            return False
        try:
            conn = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, timeout=20)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return bool(conn.execute("PRAGMA quick_check(1)").fetchone()[0] == "ok")
            finally:
                conn.close()
        except sqlite3.Error:
            return False

    def _keep_copy(self, live: sqlite3.Connection) -> str:
        """A complete copy of the live database beside it (online backup API), before a swap."""
        assert self.path is not None  # noqa: S101 - callers check
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        kept = self.path.with_name(f"{self.path.name}.failed-{stamp}")
        dst = sqlite3.connect(kept)
        try:
            live.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
        kept.chmod(0o600)
        return str(kept)

    def kept_settings(self, kept: str) -> dict[str, Any]:
        settings = self.connection.settings_dict
        # Read only: no init_command (it may switch the copy to WAL, or write).
        options = {k: v for k, v in (settings.get("OPTIONS") or {}).items() if k != "init_command"}
        return {**settings, "NAME": kept, "OPTIONS": options}

    def drop_kept(self, kept: str) -> None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{kept}{suffix}").unlink(missing_ok=True)

    def _replace_file(self, source: Path) -> None:
        """Last resort for a corrupt live file: keep it aside, then rename a complete copy in."""
        if self.path is None:
            raise RestoreError("an in-memory database has no file to replace")
        self.connection.close()
        target = self.path
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        staged = target.with_name(f".{target.name}.restoring")
        shutil.copyfile(source, staged)
        with contextlib.suppress(OSError):  # the database keeps its file mode (0600 stays 0600)
            shutil.copymode(target, staged)
        with staged.open("rb+") as f:
            os.fsync(f.fileno())
        for suffix in ("", "-wal", "-shm", "-journal"):
            old = Path(f"{target}{suffix}")
            if old.exists():
                old.replace(old.with_name(f"{old.name}.corrupt-{stamp}"))
        staged.replace(target)
        fsync_dir(target.parent)
        logger.warning("the damaged database was kept as %s.corrupt-%s", target, stamp)

    # --- checks ---------------------------------------------------------------------------
    def integrity_errors(self, scratch: Scratch | None = None, *, level: str = "quick") -> list[str]:
        try:
            with self._open(scratch) as conn:
                if scratch is not None and level != "full":
                    return _copy_errors(conn)  # a restored copy: is it a sound database file
                return _integrity_errors(conn, level)
        except Exception as exc:  # noqa: BLE001 - any failure to open is a finding, not a crash
            return [f"database unreadable: {exc}"]

    def row_counts(self, scratch: Scratch | None = None) -> dict[str, int]:
        with self._open(scratch) as conn:
            return _row_counts(conn)

    def applied_migrations(self, scratch: Scratch | None = None) -> dict[str, list[str]]:
        with self._open(scratch) as conn:
            return _migrations(conn)

    # --- undoing a failed migration: SQLite's DDL is transactional, whatever Django's atomic says --
    def rollback_kind(self, plan: MigrationPlan) -> str:
        return RESTORE if plan.needs_autocommit else TRANSACTION

    def change_marker(self) -> Any:
        """``PRAGMA data_version`` changes when another connection commits (ours never count)."""
        live = self._live()
        return (live, live.execute("PRAGMA data_version").fetchone()[0])

    def changed_since(self, marker: Any) -> bool | None:
        live = self.connection.connection
        if marker is None or live is None or live is not marker[0]:
            return None  # reconnected since: cannot tell
        try:
            return bool(live.execute("PRAGMA data_version").fetchone()[0] != marker[1])
        except sqlite3.Error:
            return None

    def begin_migration(self) -> None:
        """Foreign keys off first (SQLite ignores the pragma inside a transaction, and Django's
        schema editor needs them off), then BEGIN IMMEDIATE: the write lock up front, so other
        writers wait on their busy timeout instead of writing into a state that may be undone."""
        self.connection.ensure_connection()
        with self.connection.cursor() as cursor:
            cursor.execute("PRAGMA foreign_keys = OFF")
        mode = self.connection.transaction_mode  # type: ignore[attr-defined]
        self.connection.transaction_mode = "IMMEDIATE"  # type: ignore[attr-defined]
        try:
            super().begin_migration()
        finally:
            self.connection.transaction_mode = mode  # type: ignore[attr-defined]

    def end_migration(self, *, commit: bool) -> None:
        try:
            if commit:
                with self.connection.cursor() as cursor:
                    violations = cursor.execute("PRAGMA foreign_key_check").fetchall()
                if violations:
                    table, rowid, parent, _ = violations[0]
                    super().end_migration(commit=False)
                    raise DjangoDatabaseError(
                        f"foreign key check before COMMIT: {table} row {rowid} -> missing {parent}"
                    )
            super().end_migration(commit=commit)
        finally:
            if self.connection.connection is not None:
                with contextlib.suppress(DjangoDatabaseError), self.connection.cursor() as cursor:
                    cursor.execute("PRAGMA foreign_keys = ON")

    # --- consistent reads: a deferred transaction is a read snapshot (WAL: writers go on) ----
    @contextlib.contextmanager
    def read_snapshot(self) -> Any:
        self.connection.ensure_connection()
        mode = getattr(self.connection, "transaction_mode", None)
        self.connection.transaction_mode = "DEFERRED"  # type: ignore[attr-defined]
        try:
            atomic = transaction.atomic(using=self.alias)
            atomic.__enter__()
        finally:
            self.connection.transaction_mode = mode  # type: ignore[attr-defined]
        try:
            yield
        except BaseException as exc:
            atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise
        atomic.__exit__(None, None, None)

    # --- lock: an OS file lock beside the database; the kernel drops it if the process dies --
    def _lock_path(self, kind: str = "lock") -> Path | None:
        return None if self.path is None else self.path.with_name(f"{self.path.name}.safemigrate-{kind}")

    @staticmethod
    def _open_lock_file(path: Path) -> int:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Never through a symlink (it would truncate whatever it points at), and only our own file.
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:  # ELOOP: a symlink was planted there
            raise LockTimeout(f"cannot use the lock file {path} ({exc.strerror}); remove it") from exc
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            os.close(fd)
            raise LockTimeout(f"{path} is not a lock file of this user; remove it (it holds nothing else)")
        return fd

    def try_lock(self) -> bool:
        path = self._lock_path()
        if path is None:
            return True  # an in-memory database belongs to this process alone
        fd = self._open_lock_file(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        return True

    def unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._lock_fd, 0)
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    def mark_migrating(self, *, on: bool) -> None:
        """A second flock (``<db>.safemigrate-migrating``), held only while a migration runs."""
        path = self._lock_path("migrating")
        if path is None:
            return
        if on and self._migrating_fd is None:
            fd = self._open_lock_file(path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # only a lock holder takes it, and we hold the lock
                os.close(fd)
                return
            self._migrating_fd = fd
        elif not on and self._migrating_fd is not None:
            os.close(self._migrating_fd)
            self._migrating_fd = None

    def migration_running(self) -> bool:
        if self.path is None:
            return self._migrating_fd is not None
        return self.lock_is_held(kind="migrating")

    def lock_is_held(self, kind: str = "lock") -> bool:
        path = self._lock_path(kind)
        if path is None:
            return self._lock_fd is not None
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # also drops the shared lock, if taken
        return False

    def lock_holder(self) -> str | None:
        path = self._lock_path()
        try:
            info = json.loads(path.read_text()) if path else None
        except (OSError, ValueError):
            return None
        if not info:
            return None
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(info.get("since", 0)))
        return f"pid {info.get('pid')} on {info.get('host')}, since {since}"
