"""Which backup a door means: by catalogue id or name, the newest verified one, or a file.

The ``restore`` command and the admin's Restore button choose through these, so both refuse
the same backups in the same words.
"""

from __future__ import annotations

from pathlib import Path

from django.db import connections

from safemigrate.exceptions import BackupNotFound
from safemigrate.manifest import Manifest


def choose_backup(
    *, alias: str, ref: str | None = None, latest: bool = False, file: str | Path | None = None
) -> Manifest:
    """A file (its sidecar manifest, else one inferred from the bytes), else the newest verified
    backup of ``alias``, else the backup with id or name ``ref``; BackupNotFound when none fits."""
    from safemigrate import catalogue
    from safemigrate.restore import manifest_for_file

    if file:
        return manifest_for_file(Path(file), alias=alias)
    if latest:
        return catalogue.latest_backup(alias=alias)
    if not ref:
        raise BackupNotFound(
            "which backup? give an id or name (see `manage.py restore --list`), --latest or --file PATH"
        )
    return catalogue.find_backup(ref, alias=alias)


def restorable(manifest: Manifest, *, name: str, database: str) -> Manifest:
    """``manifest`` when its file is there and its database is configured; BackupNotFound saying
    what to do otherwise (the catalogue row ``name`` may outlive both)."""
    if not manifest.file_path.is_file():
        raise BackupNotFound(
            f"backup file {manifest.file_path} is missing; it cannot be restored. Restore another backup"
        )
    if database not in connections:
        raise BackupNotFound(f"backup {name} is of database {database!r}, which is not in DATABASES")
    return manifest
