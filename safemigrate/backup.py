"""How a backup is made: snapshot -> compress (+encrypt) -> checksum -> fsync -> verify -> rename.

A crash at any point leaves either no new file or a complete, verified one with its manifest:
the data is written under a temporary name and only renamed once it has been read back and checked.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import django

import safemigrate
from safemigrate import catalogue
from safemigrate.codec import BackupWriter, EncodedStats, StoredFileVerifier, file_suffix
from safemigrate.conf import backup_dir_for, get_settings
from safemigrate.constants import MANIFEST_SUFFIX
from safemigrate.exceptions import BackupError, IntegrityCheckFailed, SafeMigrateError
from safemigrate.files import fsync_dir, removals_joined, remove_files
from safemigrate.integrity import unhealthy
from safemigrate.leftovers import private_workdir, sweep_leftovers, sweep_scratch_databases
from safemigrate.lock import migration_lock
from safemigrate.manifest import (
    Manifest,
    clean_reason,
    partial_path,
    reserve_backup_name,
    write_manifest,
)
from safemigrate.provenance import record_made_here
from safemigrate.vendors import get_adapter
from safemigrate.vendors.base import Progress, SnapshotInfo, VendorAdapter

logger = logging.getLogger("safemigrate")


@dataclass(frozen=True)
class BackupResult:
    manifest: Manifest
    id: int | None
    duration: float

    @property
    def path(self) -> Path:
        return self.manifest.file_path


def ensure_backup_dir(alias: str) -> Path:
    """The backup folder for ``alias``, created 0700; a clear BackupError when it cannot be."""
    directory = backup_dir_for(alias)
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise BackupError(
            f"cannot create the backup folder {directory}: {exc.strerror}; "
            "create it or set SAFEMIGRATE_BACKUP_DIR"
        ) from exc
    # Backups hold every row: the folder is ours alone, whatever made it (the image's mkdir -p).
    with contextlib.suppress(OSError):
        if stat.S_IMODE(directory.stat().st_mode) != 0o700:
            directory.chmod(0o700)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise BackupError(
            f"the backup folder {directory} is not writable; fix its permissions or set "
            "SAFEMIGRATE_BACKUP_DIR"
        )
    return directory


def os_error_message(exc: OSError, where: Path) -> str:
    """One line for a failed write of a backup or dump: disk full is named as such."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        what = "disk full" if exc.errno != errno.EFBIG else "file size limit reached"
        return (
            f"backup failed: {what} writing {where}; nothing was changed. Free space "
            "(cleanupbackups) or set SAFEMIGRATE_BACKUP_DIR to a larger disk"
        )
    return (
        f"backup failed: {exc.strerror or exc} writing {where}; nothing was changed. "
        "Check the folder's permissions or set SAFEMIGRATE_BACKUP_DIR"
    )


class RunFiles:
    """The files one run creates (``created``), removed if it fails: never another run's.

    An OSError leaves as one BackupError line naming ``target`` (disk full, permissions).
    """

    def __init__(self, directory: Path) -> None:
        self.created: list[Path] = []
        self.directory = self.target = directory

    def reserve(self, *, reason: str, alias: str, extension: str, when: datetime) -> tuple[str, int]:
        """A unique backup name in the folder and the open fd of its partial file (see
        ``manifest.reserve_backup_name``); the file it names becomes the target."""
        name, fd = reserve_backup_name(
            reason=reason,
            alias=alias,
            extension=extension,
            directory=self.directory,
            when=when,
            created=self.created,
        )
        self.target = self.directory / name
        return name, fd

    def __enter__(self) -> RunFiles:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            return
        remove_files(*self.created)
        if isinstance(exc, OSError):
            raise BackupError(os_error_message(exc, self.target)) from exc


def create_backup(
    *,
    alias: str = "default",
    reason: str = "manual",
    progress: Progress | None = None,
    lock: bool = True,
    precheck: str | None = None,
) -> BackupResult:
    """Make a verified backup of database ``alias``; the database is never changed.

    ``precheck`` (e.g. "pre-migration check"): the live database must also pass the full
    integrity check (``ensure_healthy``), folded into the backup's own check of it where the
    vendor can (one pass over the rows instead of three); a failure raises IntegrityCheckFailed
    worded as ``ensure_healthy`` words it, and no backup is kept.

    Raises BackupError (disk full, permissions, a snapshot that fails its check) with the
    folder left as it was. Sends ``backup_created`` or ``backup_failed`` (safemigrate.signals).
    """
    if lock:
        with migration_lock(alias=alias):
            return create_backup(alias=alias, reason=reason, progress=progress, lock=False, precheck=precheck)
    from safemigrate.signals import backup_created, backup_failed, send

    try:
        result = _create_backup(alias=alias, reason=reason, progress=progress, precheck=precheck)
    except IntegrityCheckFailed:
        raise  # the database was refused before any backup counted: not a failed backup
    except SafeMigrateError as exc:
        send(backup_failed, alias=alias, reason=reason, error=str(exc))
        raise
    send(backup_created, alias=alias, reason=result.manifest.reason, backup=result.manifest)
    return result


def _create_backup(
    *, alias: str, reason: str, progress: Progress | None, precheck: str | None
) -> BackupResult:
    started = time.monotonic()
    adapter = get_adapter(alias)
    directory = _prepared_folder(alias)
    now = datetime.now(UTC)
    # The snapshot's plaintext copy is unlinked on another thread while the file is fsynced,
    # read back and published; it is gone before this returns.
    with removals_joined():
        with RunFiles(directory) as run:
            name, fd = run.reserve(reason=reason, alias=alias, extension=_extension(adapter), when=now)
            if progress:
                progress(f"backing up {adapter.database_name()} to {run.target}")
            stats, info = _write_verified(
                fd, adapter, directory, name=name, progress=progress, precheck=precheck
            )
            _refuse_damaged(adapter, info)
            manifest = _manifest(
                adapter, info, stats, name=name, reason=reason, now=now, started=started, directory=directory
            )
            manifest = _publish(manifest, run, partial_path(directory, name))
        backup_id = catalogue.record(manifest)
    duration = time.monotonic() - started
    logger.info(
        "backup %s: %s bytes, sha256 %s, %.2fs", manifest.name, manifest.size, manifest.sha256, duration
    )
    return BackupResult(manifest=manifest, id=backup_id, duration=duration)


def _prepared_folder(alias: str) -> Path:
    """The backup folder, with what a killed run left there removed first."""
    directory = ensure_backup_dir(alias)
    sweep_leftovers(directory)  # a killed run's plaintext copies go before a new one is made
    sweep_scratch_databases(alias)  # and its scratch databases (PostgreSQL, MariaDB)
    return directory


def _extension(adapter: VendorAdapter) -> str:
    conf = get_settings()
    return adapter.raw_extension + file_suffix(conf.compress, bool(conf.encryption_key))


def _write_verified(
    fd: int,
    adapter: VendorAdapter,
    directory: Path,
    *,
    name: str,
    progress: Progress | None,
    precheck: str | None,
) -> tuple[EncodedStats, SnapshotInfo]:
    """Snapshot into the partial file ``fd``, encoded, fsynced and read back in full.

    Verified under the temporary name, before anything looks complete; the manifest is written
    last, so a file without one is never taken for a backup.
    """
    conf = get_settings()
    partial = partial_path(directory, name)
    with os.fdopen(fd, "wb") as f:
        # The raw stream needs no sha256 of its own: the read-back below decodes it in full,
        # which checks zstd's frame checksum (gzip's CRC, the AES-GCM tags).
        writer = BackupWriter(f, compression=conf.compress, key=conf.encryption_key, hash_raw=False)
        # Read the file back from disk while it is written (another core), not after it.
        verifier = StoredFileVerifier(partial, compression=conf.compress, key=conf.encryption_key, name=name)
        try:
            workdir = private_workdir(directory)
            info = _snapshot(adapter, writer, workdir=workdir, progress=progress, precheck=precheck)
            stats = writer.finish()
            if progress:
                progress("verifying the backup (reading the written file back)")
            verifier.finish(stats)
        except BaseException:
            verifier.abort()
            raise
    return stats, info


def _snapshot(
    adapter: VendorAdapter,
    writer: BackupWriter,
    *,
    workdir: Path,
    progress: Progress | None,
    precheck: str | None,
) -> SnapshotInfo:
    """The adapter's snapshot into ``writer``; with ``precheck``, the live database's full check
    folded in, its failure raised as ``ensure_healthy`` words it."""
    if precheck is None:
        return adapter.snapshot(writer, workdir=workdir, progress=progress)
    info = adapter.precheck_snapshot(
        writer, workdir=workdir, level=get_settings().integrity_check, progress=progress
    )
    if info.live_errors:
        raise unhealthy(database=adapter.database_name(), errors=info.live_errors, when=precheck)
    return info


def _refuse_damaged(adapter: VendorAdapter, info: SnapshotInfo) -> None:
    if info.integrity_errors:
        raise BackupError(
            f"backup refused: the snapshot of {adapter.database_name()} failed its integrity "
            f"check ({info.integrity_errors[0]}); the database may be damaged: restore a "
            "backup (restore --list)"
        )


def _manifest(
    adapter: VendorAdapter,
    info: SnapshotInfo,
    stats: EncodedStats,
    *,
    name: str,
    reason: str,
    now: datetime,
    started: float,
    directory: Path,
) -> Manifest:
    """The manifest of a backup that was read back and checked: ``verified``."""
    conf = get_settings()
    return Manifest(
        name=name,
        file=name,
        sha256=stats.sha256,
        size=stats.size,
        created=now.isoformat(timespec="microseconds"),
        reason=clean_reason(reason),
        vendor=adapter.vendor,
        database=adapter.alias,
        database_name=adapter.database_name(),
        compression=conf.compress,
        encryption="aes-256-gcm" if conf.encryption_key else None,
        raw_size=stats.raw_size,
        migrations=info.migrations,
        row_counts=info.row_counts,
        app_version=safemigrate.__version__,
        django_version=django.get_version(),
        path=directory / (name + MANIFEST_SUFFIX),
        verified=True,
        verified_at=datetime.now(UTC).isoformat(timespec="microseconds"),
        duration=time.monotonic() - started,
    )


def _publish(manifest: Manifest, run: RunFiles, partial: Path) -> Manifest:
    """The verified file under its final name, then its manifest: only now is it a backup."""
    directory = run.directory
    run.created.append(run.target)
    partial.replace(run.target)
    run.created.append(directory / (manifest.name + MANIFEST_SUFFIX))
    manifest = write_manifest(manifest, directory)
    fsync_dir(directory)
    record_made_here(manifest)  # Verify loads only backups made here or authenticated
    return manifest
