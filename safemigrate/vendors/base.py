"""The interface every database vendor implements; code outside ``vendors/`` never branches on vendor.

Optional abilities follow one rule: unsupported -> raise ``UnsupportedOperation``; unnecessary -> no-op.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from safemigrate.exceptions import LockTimeout, UnsupportedOperation
from safemigrate.streams import ReadableStream, WritableStream

if TYPE_CHECKING:
    from safemigrate.plan import MigrationPlan

logger = logging.getLogger("safemigrate")

Progress = Callable[[str], None]

TRANSACTION = "transaction"
"""A failed migration is undone by ROLLBACK of the one transaction it ran in."""
RESTORE = "restore"
"""A failed migration is undone by restoring the pre-migration backup."""
SECRET_TABLES = ("django_session",)
"""Tables whose rows a backup leaves out: a session key is a login, so anyone who could read a
backup (Download, the off-site bucket) could replay the superuser's session. Their structure is
kept; after a restore everyone logs in again."""


@dataclass(frozen=True)
class SnapshotInfo:
    """What a snapshot saw, read from the snapshot itself where the vendor allows."""

    row_counts: dict[str, int] = field(default_factory=dict)
    migrations: dict[str, list[str]] = field(default_factory=dict)
    """Applied migrations, as the backup holds them (every vendor fills them in)."""
    integrity_errors: list[str] = field(default_factory=list)
    live_errors: list[str] = field(default_factory=list)
    """``precheck_snapshot``: what the pre-migration check found in the live database (then
    nothing else in this object counts: the backup is refused)."""


class Scratch:
    """A restored copy of a backup that is not yet the live database (a file, a scratch database)."""

    description: str = "scratch copy"


class VendorAdapter(abc.ABC):
    """Snapshot, restore, check and lock one database connection of one vendor."""

    vendor: str = ""
    raw_extension: str = ""
    """File extension of a raw (uncompressed) snapshot, e.g. ``sqlite3`` or ``pgdump``."""

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection
        self.alias = connection.alias
        self._migration_atomic: Any = None
        self.confine_scratch = False
        """Set while Verify runs: server engines load and read scratch copies as
        SAFEMIGRATE_SCRATCH_USER when configured (a restore's copy becomes the live database)."""

    # --- identity -------------------------------------------------------------------------
    @abc.abstractmethod
    def database_name(self) -> str:
        """A human name of the database (file path or server/database), never with a password."""

    def default_backup_dir(self) -> Path | None:
        """Where backups go when SAFEMIGRATE_BACKUP_DIR is unset; None: ``BASE_DIR/backups``."""
        return None

    # --- snapshot & restore ---------------------------------------------------------------
    @abc.abstractmethod
    def snapshot(
        self, sink: WritableStream, *, workdir: Path, progress: Progress | None = None
    ) -> SnapshotInfo:
        """Write a consistent online snapshot as a raw byte stream into ``sink``.

        Must not change the live database; must check the snapshot (``integrity_errors`` of what
        was written) when the vendor allows. ``workdir`` is on the backup folder's filesystem.
        """

    def precheck_snapshot(
        self, sink: WritableStream, *, workdir: Path, level: str, progress: Progress | None = None
    ) -> SnapshotInfo:
        """``snapshot`` of a database that must first pass the pre-migration check at ``level``.

        The check's findings come back as ``live_errors`` (then ``sink`` may hold anything: the
        caller discards it). This default checks, then snapshots; vendors that can check the
        live database while they copy it override this.
        """
        from safemigrate.integrity import check_database

        report = check_database(alias=self.alias, level=level)
        if not report.ok:
            return SnapshotInfo(live_errors=report.errors)
        return self.snapshot(sink, workdir=workdir, progress=progress)

    @abc.abstractmethod
    def restore_to_scratch(
        self, source: ReadableStream, *, workdir: Path, progress: Progress | None = None
    ) -> Scratch:
        """Load a raw snapshot stream into a scratch copy, leaving the live database untouched."""

    @abc.abstractmethod
    def swap_in(
        self, scratch: Scratch, *, progress: Progress | None = None, keep: bool = False
    ) -> str | None:
        """Make the live database equal to ``scratch`` all-or-nothing, then drop the scratch.

        ``keep``: the database it replaces is kept (renamed or copied, exactly as it was at the
        swap) instead of dropped; returns its name. Otherwise returns None.
        """

    def swap_in_checked(
        self,
        scratch: Scratch,
        *,
        check: Callable[[], None],
        progress: Progress | None = None,
        keep: bool = False,
    ) -> str | None:
        """``check()``, then ``swap_in``; a ``check`` that raises leaves the live database as is.

        Vendors that can run the check while the swap is still undoable override this to overlap
        the two (the check must not touch the live database).
        """
        check()
        return self.swap_in(scratch, progress=progress, keep=keep)

    @abc.abstractmethod
    def drop_scratch(self, scratch: Scratch) -> None:
        """Remove a scratch copy; a no-op if it is already gone."""

    def sweep_scratch(self, *, now: float | None = None) -> list[str]:
        """Drop scratch copies left by processes that are gone; their names. (Files: no-op here,
        ``safemigrate.leftovers`` sweeps them.)"""
        return []

    # --- checks ---------------------------------------------------------------------------
    @abc.abstractmethod
    def integrity_errors(self, scratch: Scratch | None = None, *, level: str = "quick") -> list[str]:
        """Problems found in the live database (or ``scratch``); empty when healthy."""

    @abc.abstractmethod
    def row_counts(self, scratch: Scratch | None = None) -> dict[str, int]:
        """Rows per table (every table, so a then/now comparison sees everything)."""

    @abc.abstractmethod
    def applied_migrations(self, scratch: Scratch | None = None) -> dict[str, list[str]]:
        """Applied migrations per app from ``django_migrations``; empty if the table is missing."""

    # --- consistent reads -----------------------------------------------------------------
    @contextlib.contextmanager
    def read_snapshot(self) -> Iterator[None]:
        """Read the live database as of one moment for the whole block (a JSON dump's tables).

        The default is one transaction (``atomic``); vendors whose default isolation lets later
        statements see newer commits (PostgreSQL's READ COMMITTED) or whose transactions take a
        write lock (SQLite in IMMEDIATE mode) override it. Never writes.
        """
        with transaction.atomic(using=self.alias):
            yield

    # --- undoing a failed migration -------------------------------------------------------
    def rollback_kind(self, plan: MigrationPlan) -> str:
        """TRANSACTION when this engine can run the whole ``plan`` in one transaction, else RESTORE."""
        return RESTORE

    def begin_migration(self) -> None:
        """Open the one transaction a guarded plan runs in, on Django's connection.

        Unsupported (no transactional DDL) -> UnsupportedOperation. The transaction is Django's
        ``atomic``, so Django's executor and schema editor nest their own blocks as savepoints.
        """
        if self._migration_atomic is not None:
            raise UnsupportedOperation("a guarded migration transaction is already open")
        self._migration_atomic = transaction.atomic(using=self.alias)
        self._migration_atomic.__enter__()

    def end_migration(self, *, commit: bool) -> None:
        """COMMIT (raising if the commit fails, after rolling back) or ROLLBACK that transaction."""
        atomic, self._migration_atomic = self._migration_atomic, None
        if atomic is None:
            return
        if not commit and self.connection.in_atomic_block:
            transaction.set_rollback(True, using=self.alias)
        atomic.__exit__(None, None, None)

    def change_marker(self) -> Any:
        """A mark of "now", for ``changed_since``; None where the vendor cannot tell."""
        return None

    def changed_since(self, marker: Any) -> bool | None:
        """Did any other connection commit a change since ``marker``? None: cannot tell."""
        return None

    def kept_settings(self, kept: str) -> dict[str, Any]:
        """Django connection settings for a kept database (``swap_in(keep=True)``'s name)."""
        raise UnsupportedOperation(f"{self.vendor} cannot open a kept database")

    def drop_kept(self, kept: str) -> None:
        """Remove a kept database once nothing in it needs keeping; a no-op if it is gone."""
        raise UnsupportedOperation(f"{self.vendor} cannot drop a kept database")

    def refuses_transaction(self, exc: BaseException) -> bool:
        """Did ``exc`` come from a statement this engine will not run inside a transaction?"""
        text = " ".join(str(e) for e in (exc, exc.__cause__) if e is not None).lower()
        return (
            type(exc).__name__ == "TransactionManagementError"
            or "durable atomic block" in text
            or "within a transaction" in text
            or "inside a transaction" in text
        )

    # --- lock -----------------------------------------------------------------------------
    @abc.abstractmethod
    def try_lock(self) -> bool:
        """Take the migration lock without waiting; True if taken. Released if the process dies."""

    @abc.abstractmethod
    def unlock(self) -> None:
        """Release the migration lock."""

    def lock_holder(self) -> str | None:
        """Who holds the lock (pid, host, since), when the vendor can tell."""
        return None

    def lock_is_held(self) -> bool:
        """Does anyone (this process included) hold the lock now? Cheap: asked per unsafe request."""
        return self.lock_holder() is not None

    def mark_migrating(self, *, on: bool) -> None:  # noqa: B027 - optional
        """While holding the lock, say (``on``) or unsay that it is held for a migration.

        Held by the lock's own session or file, so it ends with the process: never stale.
        """

    def migration_running(self) -> bool:
        """Is the lock held for a migration (not a backup, verify or rotation)? Cheap: per request.

        Vendors that cannot tell answer whether the lock is held at all (fencing more, never less).
        """
        return self.lock_is_held()

    @contextlib.contextmanager
    def lock(self, *, timeout: float, poll: float = 0.2) -> Iterator[None]:
        """Hold the migration lock, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        waiting = False
        while not self.try_lock():
            if not waiting:
                waiting = True
                holder = self.lock_holder() or "another process"
                logger.info(
                    "waiting up to %.0fs for the lock on %s (%s)", timeout, self.database_name(), holder
                )
            if time.monotonic() >= deadline:
                holder = self.lock_holder() or "another process"
                raise LockTimeout(
                    f"another safemigrate run holds the lock on {self.database_name()} "
                    f"({holder}); waited {timeout:.0f}s. Wait for it to finish, or raise "
                    "SAFEMIGRATE_LOCK_TIMEOUT"
                )
            time.sleep(poll)
        try:
            yield
        finally:
            self.unlock()
