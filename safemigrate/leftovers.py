"""The private work folder for plaintext copies, and sweeping what killed processes left behind.

SQLite snapshots, scratch restores and off-site downloads in progress are full copies of the
database (plaintext even when backups are encrypted). They live in ``<backup folder>/.work``
(0700, files 0600), so another local user cannot read them, and a process killed mid-way leaves
them there; ``sweep_leftovers`` removes those of processes that are gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import time
from pathlib import Path

from safemigrate.exceptions import BackupError

logger = logging.getLogger("safemigrate")

WORKDIR_NAME = ".work"
_WITH_PID = re.compile(
    r"\.(?:snapshot|restore)-(\d+)-\d+\.sqlite3(?:-journal|-wal|-shm)?|\..+\.(?:fetch|tmp)-(\d+)"
)
_PARTIAL = re.compile(r"\..+\.partial")
DEAD_GRACE = 60.0
"""Seconds a dead process's file is left alone (another host sharing the folder may reuse a pid)."""
STALE_AFTER = 24 * 3600.0
"""Seconds after which a file is stale whoever named it (pids are reused)."""
PARTIAL_STALE_AFTER = 3600.0
"""A ``.partial`` backup carries no pid; one untouched this long is not being written."""


def private_workdir(directory: Path) -> Path:
    """``directory/.work``, created 0700 and checked to be our own real folder (not a symlink)."""
    work = directory / WORKDIR_NAME
    with contextlib.suppress(FileExistsError):
        work.mkdir(mode=0o700)
    info = os.lstat(work)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise BackupError(
            f"{work} is not a folder of this user (a symlink or another owner's); remove it, it "
            "holds only temporary files"
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        work.chmod(0o700)
    return work


def process_alive(pid: int) -> bool:
    """Does process ``pid`` (on this host) still run?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(path: Path, now: float) -> bool:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    age = now - info.st_mtime
    if match := _WITH_PID.fullmatch(path.name):
        pid = int(match.group(1) or match.group(2))
        if pid == os.getpid():
            return False
        return age > STALE_AFTER or (age > DEAD_GRACE and not process_alive(pid))
    if _PARTIAL.fullmatch(path.name):
        return age > PARTIAL_STALE_AFTER
    return False


def sweep_leftovers(directory: Path) -> list[str]:
    """Remove temporary files of interrupted runs in ``directory`` (and its work folder).

    Only files of processes that are gone (or untouched for long): a live process's files are
    kept. Call it holding the migration lock: backups and restores hold it too, so the files of
    one running in another container (whose pid this host cannot see) are never swept. Returns
    the names removed.
    """
    removed: list[str] = []
    now = time.time()
    for folder in (directory, directory / WORKDIR_NAME):
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            path = Path(entry.path)
            if not entry.name.startswith(".") or entry.is_dir(follow_symlinks=False):
                continue
            if _is_stale(path, now):
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    logger.warning("could not remove the leftover %s: %s", path, exc)
                    continue
                removed.append(entry.name)
                logger.warning("removed %s, left behind by an interrupted run", path)
    return sorted(removed)


def sweep_scratch_databases(alias: str) -> list[str]:
    """Drop the PostgreSQL/MariaDB scratch databases of ``alias`` whose process is gone; each as
    ``scratch database <name>``. Their names carry the process and time that made them, so one of
    a running verification (which does not take the migration lock) is never dropped. A server
    that cannot be reached is skipped (the next sweep does it)."""
    from safemigrate.exceptions import SafeMigrateError
    from safemigrate.vendors import get_adapter

    try:
        dropped = get_adapter(alias).sweep_scratch()
    except (SafeMigrateError, OSError, ImportError) as exc:
        logger.debug("scratch databases of %s not swept now: %s", alias, exc)
        return []
    except Exception as exc:  # noqa: BLE001 - a driver error must not stop a backup or a listing
        logger.warning("scratch databases of %s not swept: %s", alias, exc)
        return []
    return [f"scratch database {name}" for name in dropped]
