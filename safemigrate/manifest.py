"""Sidecar manifests: the source of truth for every backup (the catalogue table is rebuilt from them).

A manifest is ``<backup file>.manifest.json`` beside the file, written atomically (temp, fsync,
rename) with mode 0600. Changes to an existing manifest (pin, verified, off-site copy, JSON dump)
re-read it under a per-folder file lock, so two of them never undo each other.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import tempfile
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock

from safemigrate.codec import fsync_dir
from safemigrate.exceptions import BackupNotFound, RestoreError

MANIFEST_SUFFIX = ".manifest.json"
FORMAT_VERSION = 1
_REASON_RE = re.compile(r"[^a-z0-9_]+")


def clean_reason(reason: str) -> str:
    """A reason safe for a file name: lower-case letters, digits and underscores."""
    return _REASON_RE.sub("_", reason.strip().lower().replace("-", "_")).strip("_")[:40] or "manual"


@dataclass(frozen=True)
class Manifest:
    """Everything known about one backup file."""

    name: str
    file: str
    sha256: str
    size: int
    created: str
    reason: str
    vendor: str
    database: str
    database_name: str
    compression: str
    encryption: str | None
    raw_size: int = 0
    raw_sha256: str = ""
    migrations: dict[str, list[str]] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)
    verified: bool = False
    verified_at: str | None = None
    pinned: bool = False
    duration: float = 0.0
    app_version: str = ""
    django_version: str = ""
    json_dump: dict[str, Any] | None = None
    offsite: dict[str, Any] | None = None
    """Where the backup was copied off-site: ``{storage, name, copied_at}`` (safemigrate.offsite)."""
    format: int = FORMAT_VERSION
    # Where the manifest was read from (not stored).
    path: Path | None = field(default=None, compare=False)

    @property
    def file_path(self) -> Path:
        if self.path is None:
            raise ValueError(f"manifest {self.name} was not read from or written to a folder")
        return self.path.with_name(self.file)

    @property
    def created_at(self) -> datetime:
        return datetime.fromisoformat(self.created)

    @property
    def total_rows(self) -> int:
        return sum(self.row_counts.values())

    def latest_migrations(self) -> dict[str, str]:
        return {app: names[-1] for app, names in sorted(self.migrations.items()) if names}

    def as_json(self, *, id: int | None = None) -> dict[str, Any]:
        """The documented JSON shape (backup/backups --format json)."""
        return {
            "id": id,
            "name": self.name,
            "path": str(self.file_path),
            "created": self.created,
            "reason": self.reason,
            "database": self.database,
            "vendor": self.vendor,
            "size": self.size,
            "sha256": self.sha256,
            "verified": self.verified,
            "verified_at": self.verified_at,
            "pinned": self.pinned,
            "compression": self.compression,
            "encryption": self.encryption,
            "duration": round(self.duration, 3),
            "row_counts": self.row_counts,
            "migrations": self.latest_migrations(),
            "json_dump": self.json_dump,
            "offsite": self.offsite,
        }


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def partial_path(directory: Path, name: str) -> Path:
    """Where backup ``name`` is written before it is complete (a dot file: never listed)."""
    return directory / f".{name}.partial"


def create_exclusive(path: Path, *, created: list[Path]) -> int:
    """Create ``path`` (O_EXCL, 0600) and add it to ``created``, with SIGINT/SIGTERM held in between:
    a Ctrl-C never leaves a file its run does not know it made. FileExistsError if it exists."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        created.append(path)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)  # a held Ctrl-C is raised now
    return fd


def reserve_backup_name(
    *, reason: str, alias: str, extension: str, directory: Path, when: datetime, created: list[Path]
) -> tuple[str, int]:
    """``backup-<reason>-<UTC timestamp>[-n]-<alias>.<ext>``, unique in ``directory``, and the open fd
    of its partial file, created with O_EXCL and added to ``created``: that file is the reservation,
    and the only one the caller owns. Two runs in the same second get two names (``-2``, ``-3``…).
    """
    stamp = when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = f"backup-{clean_reason(reason)}-{stamp}"
    for n in itertools.count(1):
        name = f"{base}-{alias}.{extension}" if n == 1 else f"{base}-{n}-{alias}.{extension}"
        partial = partial_path(directory, name)
        try:
            fd = create_exclusive(partial, created=created)
        except FileExistsError:
            continue  # another run is writing this name
        # Checked after reserving: a finished backup of this name was renamed from this partial, so
        # none can appear once we hold it.
        if (directory / name).exists() or (directory / (name + MANIFEST_SUFFIX)).exists():
            created.remove(partial)  # first: an interrupt now leaves ours, never removes another's
            os.close(fd)
            partial.unlink()
            continue
        return name, fd
    raise AssertionError("unreachable")  # pragma: no cover


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``path`` so a crash leaves the old or the new content, never a mix (0600, fsynced)."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")  # 0600, unique
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)  # the rename durable too


def manifest_path_for(file_path: Path) -> Path:
    return file_path.with_name(file_path.name + MANIFEST_SUFFIX)


def write_manifest(manifest: Manifest, directory: Path) -> Manifest:
    data = {k: v for k, v in asdict(manifest).items() if k != "path"}
    path = directory / (manifest.file + MANIFEST_SUFFIX)
    _atomic_write(path, json.dumps(data, indent=2, sort_keys=True).encode())
    return replace(manifest, path=path)


def read_manifest(path: Path) -> Manifest:
    """Load one manifest; a missing or malformed one is a clear RestoreError."""
    try:
        data = json.loads(path.read_text())
        known = {f for f in Manifest.__dataclass_fields__ if f != "path"}
        return Manifest(**{k: v for k, v in data.items() if k in known}, path=path)
    except FileNotFoundError as exc:
        raise BackupNotFound(f"no manifest at {path}") from exc
    except (ValueError, TypeError) as exc:
        raise RestoreError(f"{path} is not a safemigrate manifest ({exc})") from exc


MANIFEST_LOCK = ".manifests.lock"


def update_manifest(manifest: Manifest, **changes: Any) -> Manifest:
    """Change some fields of a manifest on disk (pinned, verified, offsite, json_dump).

    A read-modify-write of the file as it is now, not of the caller's copy, under the folder's
    manifest lock (threads and processes alike): a pin made while a verification runs survives it.
    """
    if manifest.path is None:
        raise ValueError(f"manifest {manifest.name} has no file to update")
    directory = manifest.path.parent
    with FileLock(directory / MANIFEST_LOCK, mode=0o600):
        updated = replace(read_manifest(manifest.path), **changes)
        return write_manifest(updated, directory)


def list_manifests(directory: Path, *, alias: str | None = None) -> list[Manifest]:
    """Every readable manifest in ``directory``, newest first; unreadable ones are skipped."""
    if not directory.is_dir():
        return []
    found: list[Manifest] = []
    for path in directory.glob(f"backup-*{MANIFEST_SUFFIX}"):
        try:
            manifest = read_manifest(path)
        except Exception:  # noqa: BLE001, S112 - a damaged manifest must not hide the others
            continue
        if alias is None or manifest.database == alias:
            found.append(manifest)
    found.sort(key=lambda m: (m.created, m.name), reverse=True)
    return found
