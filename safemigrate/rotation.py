"""Rotation: keep the newest N backups per database; never the newest verified one, never pinned."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from safemigrate import catalogue
from safemigrate.conf import backup_dir_for, get_settings
from safemigrate.lock import migration_lock
from safemigrate.manifest import Manifest, list_manifests

logger = logging.getLogger("safemigrate")


@dataclass(frozen=True)
class RotationResult:
    kept: list[str]
    deleted: list[str]
    dry_run: bool


def backups_to_delete(backups: list[Manifest], *, keep: int) -> list[Manifest]:
    """Which of ``backups`` (newest first) rotation removes."""
    newest_verified = next((m for m in backups if m.verified), None)
    doomed = []
    for index, manifest in enumerate(backups):
        if index < keep or manifest.pinned or manifest is newest_verified:
            continue
        doomed.append(manifest)
    return doomed


def delete_backup_files(manifest: Manifest) -> None:
    """Remove a backup's file, JSON dump and manifest (manifest last), and its catalogue row."""
    manifest.file_path.unlink(missing_ok=True)
    if manifest.json_dump and manifest.json_dump.get("file"):
        dump = manifest.file_path.with_name(manifest.json_dump["file"])
        dump.unlink(missing_ok=True)
        dump.with_name(dump.name + ".dump-manifest.json").unlink(missing_ok=True)
    if manifest.path is not None:
        manifest.path.unlink(missing_ok=True)
    catalogue.forget(manifest.name)


def rotate_backups(
    *,
    alias: str = "default",
    keep: int | None = None,
    dry_run: bool = False,
    lock_timeout: float | None = None,
) -> RotationResult:
    """Delete old backups of ``alias`` beyond ``keep`` (SAFEMIGRATE_KEEP), under the lock.

    The lock means two workers never rotate the same files and rotation never deletes a backup
    that is being restored; LockTimeout after ``lock_timeout`` (SAFEMIGRATE_LOCK_TIMEOUT) seconds.
    """
    keep = get_settings().keep if keep is None else keep
    with migration_lock(alias=alias, timeout=lock_timeout):
        backups = list_manifests(backup_dir_for(alias), alias=alias)
        doomed = backups_to_delete(backups, keep=keep)
        if not dry_run:
            for manifest in doomed:
                delete_backup_files(manifest)
                logger.info("rotation deleted %s", manifest.name)
    names = {m.name for m in doomed}
    return RotationResult(
        kept=[m.name for m in backups if m.name not in names],
        deleted=[m.name for m in doomed],
        dry_run=dry_run,
    )
