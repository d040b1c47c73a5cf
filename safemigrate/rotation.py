"""Rotation: keep the newest N backups per database; never the newest verified one, never pinned."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

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
        directory = backup_dir_for(alias)
        backups = list_manifests(directory, alias=alias)
        doomed = backups_to_delete(backups, keep=keep)
        # Standalone JSON dumps (--json-only, the dump task) are rotated by the same count.
        referenced = {m.json_dump["file"] for m in backups if m.json_dump and m.json_dump.get("file")}
        dumps = [d for d in _standalone_dumps(directory, alias) if d.name not in referenced]
        old_dumps = dumps[keep:]
        if not dry_run:
            for manifest in doomed:
                delete_backup_files(manifest)
                logger.info("rotation deleted %s", manifest.name)
            for dump in old_dumps:
                dump.unlink(missing_ok=True)
                dump.with_name(dump.name + _DUMP_MANIFEST_SUFFIX).unlink(missing_ok=True)
                logger.info("rotation deleted %s", dump.name)
    names = {m.name for m in doomed}
    return RotationResult(
        kept=[m.name for m in backups if m.name not in names],
        deleted=[m.name for m in doomed] + [d.name for d in old_dumps],
        dry_run=dry_run,
    )


_DUMP_MANIFEST_SUFFIX = ".dump-manifest.json"


def _standalone_dumps(directory: Path, alias: str) -> list[Path]:
    """JSON dump files of ``alias`` that have a dump manifest, newest first."""
    found: list[tuple[str, Path]] = []
    for sidecar in directory.glob(f"backup-*-{alias}.json*{_DUMP_MANIFEST_SUFFIX}"):
        try:
            created = str(json.loads(sidecar.read_text()).get("created", ""))
        except (OSError, ValueError):
            continue
        found.append((created, sidecar.with_name(sidecar.name[: -len(_DUMP_MANIFEST_SUFFIX)])))
    return [path for _, path in sorted(found, reverse=True)]
