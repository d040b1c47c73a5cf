"""Which backups this installation made: a journal of (name, sha256) lines, each with a MAC.

Verify loads a backup into a scratch database on the live server: without
SAFEMIGRATE_ENCRYPTION_KEY a manifest proves nothing, so a file someone dropped into the backup
folder would run its SQL there. Each backup this installation writes is recorded in
``<backup folder>/.work/made-here``; a line counts only with its MAC, keyed from Django's
SECRET_KEY (or one of SECRET_KEY_FALLBACKS), which a person who can write to the folder does not
have. Verify of a server engine's backup that is neither authenticated nor recorded here is
refused unless the operator says ``--trust-file``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
from pathlib import Path

from django.conf import settings

from safemigrate.exceptions import RestoreError
from safemigrate.leftovers import private_workdir
from safemigrate.manifest import Manifest

JOURNAL = "made-here"


def _keys() -> list[bytes]:
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return [hashlib.sha256(b"safemigrate made-here\0" + str(s).encode()).digest() for s in secrets if s]


def _mac(key: bytes, name: str, sha256: str) -> str:
    return hmac.new(key, f"{name}\0{sha256}".encode(), hashlib.sha256).hexdigest()


def record_made_here(manifest: Manifest) -> None:
    """Note that this installation wrote ``manifest``'s file (appended, fsynced)."""
    if manifest.path is None or not manifest.sha256 or manifest.vendor == "sqlite":
        return  # SQLite backups are verified whoever made them (check_made_here)
    keys = _keys()
    if not keys:
        return
    journal = private_workdir(manifest.path.parent) / JOURNAL
    line = f"{manifest.name} {manifest.sha256} {_mac(keys[0], manifest.name, manifest.sha256)}\n"
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def made_here(manifest: Manifest) -> bool:
    """Did this installation write this backup (same name, same sha256)?"""
    if manifest.path is None or not manifest.sha256:
        return False
    journal: Path = manifest.path.parent / ".work" / JOURNAL
    expected = [_mac(key, manifest.name, manifest.sha256) for key in _keys()]
    with contextlib.suppress(OSError):
        fd = os.open(journal, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            for raw in f:
                parts = raw.decode("ascii", "replace").split()
                ours = len(parts) == 3 and parts[:2] == [manifest.name, manifest.sha256]
                if ours and any(hmac.compare_digest(parts[2], mac) for mac in expected):
                    return True
    return False


def check_made_here(manifest: Manifest, *, vendor: str, key: str | None) -> None:
    """RestoreError unless ``manifest`` may be loaded into a scratch database by Verify.

    SQLite's scratch copy is a file of its own, opened only to read: no statement of the backup
    runs, so any file may be verified. A server engine runs the backup's SQL on the live server:
    only an authenticated manifest (a key is set: checked when it is staged) or a backup made here.
    """
    if vendor == "sqlite" or key or made_here(manifest):
        return
    raise RestoreError(
        f"{manifest.name} was not made by this installation (no record of it) and without "
        "SAFEMIGRATE_ENCRYPTION_KEY its manifest cannot be authenticated: it was not loaded. If you "
        "trust the file, verify it with: manage.py verifybackup --trust-file "
        f"{manifest.name}"
    )


def unexpected_schema_objects(manifest: Manifest, *, alias: str) -> list[str]:
    """SQLite: the triggers and views in ``manifest``'s backup that the live database ``alias``
    does not have, e.g. ``trigger evil``; empty when it cannot tell.

    A crafted backup can hide SQL in a trigger (it runs at the next write after a restore) or a
    view, and such a backup verifies and restores fine: the restore preview names them, since
    the migrations that made the live database did not create them.
    """
    import shutil
    import sqlite3
    import time

    from django.db import connections

    from safemigrate.codec import BackupReader
    from safemigrate.conf import get_settings

    connection = connections[alias]
    if manifest.vendor != "sqlite" or connection.vendor != "sqlite" or manifest.path is None:
        return []
    objects = "SELECT type, name FROM sqlite_master WHERE type IN ('trigger', 'view')"
    try:
        with connection.cursor() as cursor:
            cursor.execute(objects)
            live_objects = {(str(r[0]), str(r[1])) for r in cursor.fetchall()}
    except Exception:  # noqa: BLE001 - a broken live database: the preview says so already
        return []
    if not manifest.file_path.is_file():
        return []
    work = private_workdir(manifest.path.parent)
    conf = get_settings()
    copy = work / f".restore-{os.getpid()}-{time.monotonic_ns()}.sqlite3"  # swept if we die
    try:
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with manifest.file_path.open("rb") as f, os.fdopen(fd, "wb") as out:
            reader = BackupReader(
                f,
                compression=manifest.compression,
                encrypted=bool(manifest.encryption),
                key=conf.encryption_key,
                name=manifest.name,
                limit=manifest.raw_size or max(shutil.disk_usage(work).free - conf.free_space_reserve, 0),
            )
            while chunk := reader.read(1 << 20):
                out.write(chunk)
        conn = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
        try:
            rows = conn.execute(objects).fetchall()
        finally:
            conn.close()
    except Exception:  # noqa: BLE001 - a preview warning is best effort: restore checks the file
        return []
    finally:
        copy.unlink(missing_ok=True)
    return sorted(f"{kind} {name}" for kind, name in {(str(k), str(n)) for k, n in rows} - live_objects)
