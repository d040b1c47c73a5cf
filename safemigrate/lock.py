"""The per-database migration lock, re-entrant within one thread only.

safemigrate, restore, backup and rotation all take it, so a scheduled backup never runs half-way
through a migration and rotation never deletes a backup that is being restored. Another thread
of the same process (runserver, gunicorn gthread, two admin clicks) waits like another process:
the vendor lock is taken on that thread's own connection.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from safemigrate.conf import get_settings
from safemigrate.vendors import get_adapter

_held = threading.local()  # alias -> depth, for this thread only


@contextlib.contextmanager
def migration_lock(*, alias: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the lock on database ``alias``; raises LockTimeout naming the holder after ``timeout``."""
    depth: dict[str, int] = _held.__dict__.setdefault("depth", {})
    if depth.get(alias):
        depth[alias] += 1
        try:
            yield
        finally:
            depth[alias] -= 1
        return
    adapter = get_adapter(alias)
    wait = get_settings().lock_timeout if timeout is None else timeout
    with adapter.lock(timeout=wait):
        depth[alias] = 1
        try:
            yield
        finally:
            depth.pop(alias, None)


def lock_is_held(*, alias: str) -> bool:
    """Is a safemigrate run (migration, restore, backup, rotation) holding ``alias``'s lock now?"""
    return get_adapter(alias).lock_is_held()


@contextlib.contextmanager
def migration_running(*, alias: str) -> Iterator[None]:
    """Inside ``migration_lock``: the lock is held for a migration, which the fence asks about.

    Held by the vendor the way the lock is (a session, a file lock), so a killed process leaves
    nothing behind that would fence writers forever.
    """
    adapter = get_adapter(alias)
    adapter.mark_migrating(on=True)
    try:
        yield
    finally:
        adapter.mark_migrating(on=False)


def migration_in_progress(*, alias: str) -> bool:
    """Is a migration (with its backup and any rollback) running on ``alias`` now?

    Plain backups, verification, rotation and restores hold the lock too, but not this.
    """
    return get_adapter(alias).migration_running()
