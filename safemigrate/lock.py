"""The per-database migration lock, re-entrant within a process.

safemigrate, restore, backup and rotation all take it, so a scheduled backup never runs half-way
through a migration and rotation never deletes a backup that is being restored.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from safemigrate.conf import get_settings
from safemigrate.vendors import get_adapter

_held: dict[str, int] = {}
_guard = threading.RLock()


@contextlib.contextmanager
def migration_lock(*, alias: str, timeout: float | None = None) -> Iterator[None]:
    """Hold the lock on database ``alias``; raises LockTimeout naming the holder after ``timeout``."""
    with _guard:
        reentrant = bool(_held.get(alias))
        if reentrant:
            _held[alias] += 1
    if reentrant:
        try:
            yield
        finally:
            with _guard:
                _held[alias] -= 1
        return
    adapter = get_adapter(alias)
    wait = get_settings().lock_timeout if timeout is None else timeout
    with adapter.lock(timeout=wait):
        _held[alias] = 1
        try:
            yield
        finally:
            _held.pop(alias, None)


def lock_is_held(*, alias: str) -> bool:
    """Is a safemigrate run (migration, restore, backup, rotation) holding ``alias``'s lock now?"""
    return get_adapter(alias).lock_is_held()
