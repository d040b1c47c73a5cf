"""Rotation: keep the newest N backups per database and reason class; never the newest verified
one, never a pinned one.

Classes keep anyone who can click "Back up now" from evicting the backups that matter: admin
clicks and manual backups only ever push out their own kind, never a pre-migration, scheduled or
pre-restore one.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from safemigrate import catalogue
from safemigrate.conf import backup_dir_for, get_settings
from safemigrate.leftovers import sweep_leftovers, sweep_scratch_databases
from safemigrate.lock import migration_lock
from safemigrate.manifest import Manifest, list_manifests

logger = logging.getLogger("safemigrate")


PROTECTED_CLASSES = ("pre_migrate", "scheduled", "pre_restore", "admin")
"""Reasons kept as classes of their own; every other reason (manual, --reason X) is "manual"."""


@dataclass(frozen=True)
class RotationResult:
    kept: list[str]
    deleted: list[str]
    dry_run: bool
    swept: list[str] = field(default_factory=list)
    """Leftovers of interrupted runs removed from the folder (see safemigrate.leftovers)."""


def reason_class(reason: str) -> str:
    return reason if reason in PROTECTED_CLASSES else "manual"


def backups_to_delete(backups: list[Manifest], *, keep: int) -> list[Manifest]:
    """Which of ``backups`` (newest first) rotation removes: beyond ``keep`` in their class."""
    newest_verified = next((m for m in backups if m.verified), None)
    seen: dict[str, int] = {}
    doomed = []
    for manifest in backups:
        index = seen[reason_class(manifest.reason)] = seen.get(reason_class(manifest.reason), -1) + 1
        if index < keep or manifest.pinned or manifest is newest_verified:
            continue
        doomed.append(manifest)
    return doomed


def admin_backup_refusal(*, alias: str) -> str | None:
    """Why a "Back up now" click must wait, or None: one per SAFEMIGRATE_ADMIN_BACKUP_INTERVAL
    per database, and never below SAFEMIGRATE_FREE_SPACE_RESERVE free bytes afterwards."""
    conf = get_settings()
    directory = backup_dir_for(alias)
    backups = list_manifests(directory, alias=alias)
    last_admin = next((m for m in backups if m.reason == "admin"), None)
    if last_admin is not None:
        age = (datetime.now(UTC) - last_admin.created_at).total_seconds()
        if 0 <= age < conf.admin_backup_interval:
            return (
                f"a backup was made from the admin {age:.0f}s ago ({last_admin.name}); wait "
                f"{conf.admin_backup_interval - age:.0f}s (SAFEMIGRATE_ADMIN_BACKUP_INTERVAL)"
            )
    needed = (backups[0].size if backups else 0) + conf.free_space_reserve
    free = shutil.disk_usage(directory if directory.exists() else directory.parent).free
    if free < needed:
        return (
            f"only {free:,} bytes are free in {directory}; a backup from the admin must leave "
            f"{conf.free_space_reserve:,} free (SAFEMIGRATE_FREE_SPACE_RESERVE). Free space "
            "(cleanupbackups) first"
        )
    return None


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
    """Delete old backups of ``alias`` beyond ``keep`` (SAFEMIGRATE_KEEP) per reason class, and
    leftovers of interrupted runs, under the lock.

    The lock means two workers never rotate the same files and rotation never deletes a backup
    that is being restored; LockTimeout after ``lock_timeout`` (SAFEMIGRATE_LOCK_TIMEOUT) seconds.
    """
    keep = get_settings().keep if keep is None else keep
    with migration_lock(alias=alias, timeout=lock_timeout):
        directory = backup_dir_for(alias)
        swept = [] if dry_run else sweep_leftovers(directory) + sweep_scratch_databases(alias)
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
        swept=swept,
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
