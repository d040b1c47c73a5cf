"""What the server engines (PostgreSQL, MariaDB/MySQL) share; their SQL stays in their modules.

- Scratch restore: a backup is loaded into a new database on the same server, named
  ``<live>_smscratch_<host>_<pid>_<time>_<random>`` (who made it and when, so a sweep can tell a
  leftover of a killed run from a running verification's), checked by the caller, then swapped in
  or dropped. The database a swap replaces is ``<live>_smold_…`` until it is dropped, or
  ``<live>_smfailed_…`` when it is kept (never swept).
- Lock: held by a dedicated connection that is neither Django's nor the live database's, so no
  restore or migration can drop it; ending that session releases it.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Generic, TypeVar

from django.db.backends.base.base import BaseDatabaseWrapper

from safemigrate.exceptions import SafeMigrateError
from safemigrate.leftovers import process_alive
from safemigrate.streams import ReadableStream
from safemigrate.vendors.base import Progress, Scratch, VendorAdapter

logger = logging.getLogger("safemigrate")

SCRATCH_DEAD_GRACE = 60.0
"""Seconds a dead process's scratch database is left alone (as for leftover files)."""
SCRATCH_STALE_AFTER = 24 * 3600.0
"""Seconds after which a scratch database is stale whoever made it (another host, a reused pid)."""
_SCRATCH = re.compile(r"_smscratch_([0-9a-f]{4})_([0-9a-z]+)_([0-9a-z]+)_[0-9a-f]{4}")


def scratch_account() -> tuple[str, str] | None:
    """(user, password) of SAFEMIGRATE_SCRATCH_USER, the account Verify loads and checks scratch
    copies as (one that can reach nothing but the scratch databases); None when not configured."""
    from django.conf import settings

    user = getattr(settings, "SAFEMIGRATE_SCRATCH_USER", None)
    if not user:
        return None
    return str(user), str(getattr(settings, "SAFEMIGRATE_SCRATCH_PASSWORD", None) or "")


# --- names: derived from the live database's, within the engine's identifier limit -------------
def _within(live: str, suffix: str, limit: int) -> str:
    return live.encode()[: limit - len(suffix)].decode(errors="ignore") + suffix


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def _host_tag() -> str:
    """This host and boot: a pid means something only on the host (and boot) that gave it."""
    boot = ""
    with contextlib.suppress(OSError):
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    return hashlib.sha256(f"{socket.gethostname()}\0{boot}".encode()).hexdigest()[:4]


def scratch_name(live: str, *, limit: int) -> str:
    """``<live>_smscratch_<host>_<pid>_<time>_<random>`` within ``limit`` bytes: who made it, when."""
    suffix = (
        f"_smscratch_{_host_tag()}_{_base36(os.getpid())}_{_base36(int(time.time()))}_{secrets.token_hex(2)}"
    )
    return _within(live, suffix, limit)


def stale_scratch(names: Iterable[str], live: str, *, limit: int, now: float | None = None) -> list[str]:
    """Which of ``names`` are scratch databases of ``live`` whose maker is gone.

    Those of a process on this host that no longer runs (after a grace), or older than a day
    whoever made them; never this process's own, nor one of a live process (a running Verify,
    which does not take the migration lock).
    """
    now = time.time() if now is None else now
    here = _host_tag()
    stale = []
    for name in names:
        found = _SCRATCH.search(name)
        if not found or found.end() != len(name):
            continue
        prefix = name[: found.start()]
        if live.encode()[: limit - len(found[0])].decode(errors="ignore") != prefix:
            continue
        host, pid, created = found[1], int(found[2], 36), int(found[3], 36)
        age = now - created
        if host == here and pid == os.getpid():
            continue
        if age > SCRATCH_STALE_AFTER or (
            host == here and age > SCRATCH_DEAD_GRACE and not process_alive(pid)
        ):
            stale.append(name)
    return stale


class ServerScratch(Scratch):
    """A scratch database (MariaDB: schema) on the live database's server."""

    kind = "scratch database"

    def __init__(self, name: str, account: tuple[str, str] | None = None) -> None:
        self.name = name
        self.account = account
        """(user, password) it is loaded and read as (SAFEMIGRATE_SCRATCH_USER), or None: ours."""
        self.description = f"{self.kind} {name}"

    def settle(self) -> None:
        """Wait for work still running on this copy, before it is dropped (none here)."""


S = TypeVar("S", bound=ServerScratch)
Loader = Callable[[Progress | None], None]
"""Loads the backup into a scratch database just created (``ServerAdapter._new_scratch``)."""


class ServerAdapter(VendorAdapter, Generic[S]):
    """The scratch-restore sequence, names and dedicated-connection lock of a server engine.

    Vendors implement the hooks (``_admin``, ``_new_scratch``, ``_drop_database``, the lock's
    statements); ``_admin`` yields the handle their SQL runs on (a connection or a cursor) on a
    connection to no database, or a maintenance one: never the live database.
    """

    scheme = ""
    """Of ``database_name()``: ``scheme://user@host:port/name``."""
    default_port = 0
    name_limit = 0
    """Bytes an identifier may take (PostgreSQL 63, MariaDB 64)."""
    scratch_class: type[S]
    driver_errors: tuple[type[Exception], ...] = ()
    """The driver's errors: what a failed statement raises."""

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        super().__init__(connection)
        self._lock_conn: Any = None
        """The dedicated connection holding the lock, or None."""

    # --- identity -------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def live_name(self) -> str:
        """The live database's name on the server."""

    def database_name(self) -> str:
        s = self.connection.settings_dict
        user = f"{s['USER']}@" if s.get("USER") else ""
        host = s.get("HOST") or "localhost"
        port = f":{s['PORT']}" if s.get("PORT") else ""
        return f"{self.scheme}://{user}{host}{port}/{self.live_name}"

    def _server(self) -> str:
        s = self.connection.settings_dict
        return f"{s.get('HOST') or 'localhost'}:{s.get('PORT') or self.default_port}"

    def _aside_name(self, *, keep: bool) -> str:
        """``<live>_smfailed_<random>`` (kept) or ``<live>_smold_<random>`` (dropped after a swap)."""
        return _within(
            self.live_name, f"_sm{'failed' if keep else 'old'}_{secrets.token_hex(4)}", self.name_limit
        )

    def _own(self, scratch: Scratch) -> S:
        if not isinstance(scratch, self.scratch_class):
            raise TypeError(f"not a {self.vendor} {self.scratch_class.kind}: {scratch!r}")
        return scratch

    def _failures(self) -> tuple[type[Exception], ...]:
        """What a statement or a connection that fails raises."""
        return (*self.driver_errors, SafeMigrateError)

    def _account(self, scratch: Scratch | None) -> tuple[str, str] | None:
        """A confined copy is read as its own account: its code never runs as ours."""
        return None if scratch is None else self._own(scratch).account

    # --- hooks ----------------------------------------------------------------------------
    @abc.abstractmethod
    def _admin(
        self, *, error: type[SafeMigrateError] = SafeMigrateError
    ) -> contextlib.AbstractContextManager[Any]:
        """A handle to run administration SQL on, away from the live database; ``error`` if the
        server cannot be reached."""

    @abc.abstractmethod
    def _database_names(self, admin: Any) -> list[str]:
        """Every database on the server."""

    @abc.abstractmethod
    def _in_use(self, admin: Any, name: str) -> bool:
        """Does any session use database ``name``?"""

    @abc.abstractmethod
    def _drop_database(self, admin: Any, name: str, *, force: bool) -> None:
        """DROP DATABASE IF EXISTS; ``force``: even while other sessions use it."""

    @abc.abstractmethod
    def _new_scratch(self, source: ReadableStream, account: tuple[str, str] | None) -> tuple[S, Loader]:
        """Check what can be checked before anything exists, then create an empty scratch
        database (owned by or reachable to ``account``); it and the function that loads it."""

    # --- scratch restore: create -> load (-> the caller checks) -> swap in or drop ---------
    def _scratch_name(self) -> str:
        return scratch_name(self.live_name, limit=self.name_limit)

    def restore_to_scratch(
        self, source: ReadableStream, *, workdir: Path, progress: Progress | None = None
    ) -> Scratch:
        account = scratch_account() if self.confine_scratch else None
        scratch, load = self._new_scratch(source, account)
        logger.info("created %s", scratch.description)
        try:
            load(progress)
        except BaseException:
            self.drop_scratch(scratch)
            raise
        return scratch

    def drop_scratch(self, scratch: Scratch) -> None:
        target = self._own(scratch)
        target.settle()
        try:
            with self._admin() as admin:
                self._drop_database(admin, target.name, force=True)
            logger.info("dropped %s", target.description)
        except self._failures() as exc:
            logger.warning("could not drop %s (%s); drop it by hand", target.description, exc)

    def sweep_scratch(self, *, now: float | None = None) -> list[str]:
        kind, names = self.scratch_class.kind, []
        with self._admin() as admin:
            for name in stale_scratch(
                self._database_names(admin), self.live_name, limit=self.name_limit, now=now
            ):
                # Never one in use (a verification's load or check); no FORCE: a connection
                # arriving meanwhile makes the DROP fail, and the database is kept.
                if self._in_use(admin, name):
                    continue
                try:
                    self._drop_database(admin, name, force=False)
                except self.driver_errors as exc:
                    logger.warning("could not drop the leftover %s %s: %s", kind, name, exc)
                    continue
                logger.warning("dropped the %s %s, left behind by an interrupted run", kind, name)
                names.append(name)
        return names

    def drop_kept(self, kept: str) -> None:
        with self._admin() as admin:
            self._drop_database(admin, kept, force=True)

    # --- lock: on a dedicated connection --------------------------------------------------
    @abc.abstractmethod
    def _lock_session(self) -> Any:
        """A new dedicated connection for the lock (a DB-API connection: ``close()`` ends it)."""

    @abc.abstractmethod
    def _take_lock(self, conn: Any) -> bool:
        """Take the lock on ``conn`` without waiting (and keep an idle session from timing out)."""

    @abc.abstractmethod
    def _mark_migrating(self, conn: Any, *, on: bool) -> None:
        """Take (``on``) or release the second lock that says a migration runs."""

    @abc.abstractmethod
    def _lock_probe(self, *, migrating: bool) -> tuple[str, list[Any]]:
        """A query whose one value is true while the lock (or the migrating mark) is held."""

    @abc.abstractmethod
    def _describe_holder(self, admin: Any) -> str | None:
        """Who holds the lock, from the server's session list; None if nobody."""

    def try_lock(self) -> bool:
        if self._lock_conn is not None:
            return True
        conn = self._lock_session()
        try:
            taken = self._take_lock(conn)
        except BaseException:
            conn.close()
            raise
        if not taken:
            conn.close()
            return False
        self._lock_conn = conn
        return True

    def unlock(self) -> None:
        conn, self._lock_conn = self._lock_conn, None
        if conn is not None:
            conn.close()  # ending the session releases the lock

    def _lock_in_use(self, *, migrating: bool) -> bool:
        with self.connection.cursor() as cursor:  # Django's: no new connection per request
            cursor.execute(*self._lock_probe(migrating=migrating))
            return bool(cursor.fetchone()[0])

    def lock_is_held(self) -> bool:
        return self._lock_in_use(migrating=False)

    def mark_migrating(self, *, on: bool) -> None:
        """A second lock on the lock's own session: it ends with that session."""
        if self._lock_conn is None:
            return
        with contextlib.suppress(*self.driver_errors):  # the fence then falls back to "not migrating"
            self._mark_migrating(self._lock_conn, on=on)

    def migration_running(self) -> bool:
        return self._lock_in_use(migrating=True)

    def lock_holder(self) -> str | None:
        try:
            with self._admin() as admin:
                return self._describe_holder(admin)
        except self._failures():
            return None
