"""Sidecar manifests: the source of truth for every backup (the catalogue table is rebuilt from them).

A manifest is ``<backup file>.manifest.json`` beside the file, written atomically (temp, fsync,
rename) with mode 0600. Changes to an existing manifest (pin, verified, off-site copy, JSON dump)
re-read it under a per-folder file lock, so two of them never undo each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hmac
import itertools
import json
import logging
import os
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from safemigrate.codec import BackupReader, mac_of
from safemigrate.constants import MANIFEST_SUFFIX, MAX_MANIFEST_BYTES, PARTIAL_SUFFIX
from safemigrate.exceptions import BackupNotFound, ChecksumMismatch, RestoreError
from safemigrate.files import atomic_write, create_exclusive, open_regular

logger = logging.getLogger("safemigrate")

FORMAT_VERSION = 1
_REASON_RE = re.compile(r"[^a-z0-9_]+")
NAME_RE = re.compile(
    r"backup-[a-z0-9_]{1,40}-\d{8}T\d{6,12}Z(?:-[A-Za-z0-9]{1,32}){0,3}-[A-Za-z0-9_-]{1,64}"
    r"\.[a-z0-9]{1,10}(?:\.[a-z0-9]{1,10}){0,3}"
)
"""Every file name safemigrate writes (``backup-<reason>-<UTC stamp>[-n]-<alias>.<ext>``, room left
for a unique part after the stamp): a plain name, never a path, so a name read from a manifest
cannot point outside the backup folder. ``backup_name`` must only make names that match it."""


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
    migrations: dict[str, list[str]] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)
    verified: bool = False
    verified_at: str | None = None
    pinned: bool = False
    pinned_until: str | None = None
    """A time-limited pin (ISO 8601): rotation keeps the backup until then (the pre-migration one)."""
    duration: float = 0.0
    app_version: str = ""
    django_version: str = ""
    json_dump: dict[str, Any] | None = None
    offsite: dict[str, Any] | None = None
    """Where the backup was copied off-site: ``{storage, name, copied_at}`` (safemigrate.offsite)."""
    verification_failure: dict[str, str] | None = None
    """The last failed verification, ``{at, error}``; cleared when a verification passes."""
    format: int = FORMAT_VERSION
    mac: str = ""
    """HMAC of every other field, keyed from SAFEMIGRATE_ENCRYPTION_KEY (empty without a key)."""
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
            "pinned_until": self.pinned_until,
            "compression": self.compression,
            "encryption": self.encryption,
            "duration": round(self.duration, 3),
            "row_counts": self.row_counts,
            "migrations": self.latest_migrations(),
            "json_dump": self.json_dump,
            "offsite": self.offsite,
            "verification_failure": self.verification_failure,
        }


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def partial_path(directory: Path, name: str) -> Path:
    """Where backup ``name`` is written before it is complete (a dot file: never listed)."""
    return directory / f".{name}{PARTIAL_SUFFIX}"


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


def manifest_path_for(file_path: Path) -> Path:
    return file_path.with_name(file_path.name + MANIFEST_SUFFIX)


def is_backup_name(name: object) -> bool:
    """True for a plain file name of our scheme (no folder, no ``..``, no manifest suffix)."""
    return isinstance(name, str) and bool(NAME_RE.fullmatch(name)) and not name.endswith(MANIFEST_SUFFIX)


def _is_iso(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _type_ok(value: object, hint: Any) -> bool:
    """``value`` (parsed JSON) fits the annotation ``hint`` of a Manifest field."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_type_ok(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if origin is dict:
        key, item = typing.get_args(hint)
        return isinstance(value, dict) and all(
            _type_ok(k, key) and _type_ok(v, item) for k, v in value.items()
        )
    return False


@functools.cache
def _hints() -> dict[str, Any]:
    return {k: v for k, v in typing.get_type_hints(Manifest).items() if k != "path"}


def manifest_problem(data: object, *, sidecar: str | None = None) -> str | None:
    """Why ``data`` (a parsed manifest) is not one of ours, or None; every name is checked.

    A manifest may come from an attacker (a shared folder, an off-site bucket): each field must
    have its type, and every file name in it must be a plain name of our scheme, so nothing read
    from it can name a file outside the backup folder or another backup's file.
    """
    if not isinstance(data, dict):
        return "not a JSON object"
    hints = _hints()
    for name in ("name", "file", "sha256", "size", "created", "database", "vendor", "compression"):
        if name not in data:
            return f"no {name!r}"
    for key, value in data.items():
        if key in hints and not _type_ok(value, hints[key]):
            return f"{key!r} has the wrong type"
    file = data["file"]
    if not is_backup_name(file) or data["name"] != file:
        return f"its file name {str(file)[:80]!r} is not a safemigrate backup name"
    if sidecar is not None and sidecar != file + MANIFEST_SUFFIX:
        return f"it describes {file}, not {sidecar.removesuffix(MANIFEST_SUFFIX)}"
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", data["database"]) or not file.split(".", 1)[0].endswith(
        f"-{data['database']}"
    ):
        return f"its database {str(data['database'])[:40]!r} does not match its name"
    if not re.fullmatch(r"[0-9a-f]{64}", data["sha256"]) or data["size"] < 0:
        return "its sha256 or size is not valid"
    verified_at, pinned_until = data.get("verified_at"), data.get("pinned_until")
    if (
        not _is_iso(data["created"])
        or (verified_at is not None and not _is_iso(verified_at))
        or (pinned_until is not None and not _is_iso(pinned_until))
    ):
        return "its dates are not ISO 8601 with a time zone"
    failure = data.get("verification_failure")
    if failure is not None and (not isinstance(failure, dict) or not _is_iso(failure.get("at"))):
        return "its verification failure has no ISO 8601 time"
    dump = data.get("json_dump")
    if dump is not None and dump.get("file") is not None and not is_backup_name(dump["file"]):
        return f"its JSON dump name {str(dump['file'])[:80]!r} is not a safemigrate name"
    offsite = data.get("offsite")
    if offsite is not None and offsite.get("name") not in (None, file):
        return "its off-site name differs from its file name"
    return None


_NEWER_FIELDS = ("pinned_until", "verification_failure")
"""Fields added after manifests were first signed: left out of the MAC while unset, so the MACs of
older manifests still hold."""


def _stored_fields(manifest: Manifest) -> dict[str, Any]:
    return {
        k: v
        for k, v in asdict(manifest).items()
        if k not in ("path", "mac") and not (k in _NEWER_FIELDS and v is None)
    }


def sign(manifest: Manifest, key: str | None) -> Manifest:
    """``manifest`` with its MAC (none without a key)."""
    return replace(manifest, mac=mac_of(_stored_fields(manifest), key) if key else "")


def authentication_problem(manifest: Manifest, key: str | None) -> str | None:
    """Why ``manifest`` cannot be trusted under ``key`` (SAFEMIGRATE_ENCRYPTION_KEY), or None.

    With a key, a backup must be encrypted and its manifest carry our MAC: a manifest written
    without the key (a swapped, renamed or older backup) is refused. Without a key nothing can
    be proven, so nothing is refused here.
    """
    if not key:
        return None
    if not manifest.encryption:
        return (
            f"{manifest.name} is not encrypted but SAFEMIGRATE_ENCRYPTION_KEY is set: it was not made "
            "with this key (or was swapped); it was not used"
        )
    if not manifest.mac:
        return (
            f"the manifest of {manifest.name} is not authenticated (no MAC) but "
            "SAFEMIGRATE_ENCRYPTION_KEY is set; it was not used"
        )
    fields = _stored_fields(manifest)
    # Manifests written before raw_sha256 was dropped carry it, always empty, under their MAC.
    if not any(
        hmac.compare_digest(manifest.mac, mac_of(f, key)) for f in (fields, {**fields, "raw_sha256": ""})
    ):
        return (
            f"the manifest of {manifest.name} fails its authentication (changed, renamed or made "
            "with another SAFEMIGRATE_ENCRYPTION_KEY); it was not used"
        )
    return None


def check_trusted(manifest: Manifest) -> None:
    """RestoreError unless ``manifest`` may be used: with SAFEMIGRATE_ENCRYPTION_KEY set, only an
    encrypted backup whose manifest carries our MAC (nothing else is proven to be ours)."""
    from safemigrate.conf import get_settings

    key = get_settings().encryption_key
    problem = authentication_problem(manifest, key)
    if not problem:
        return
    if manifest.encryption and manifest.path is not None and manifest.file_path.is_file():
        # A wrong key also fails the MAC: say so when the file's first chunk tells (WrongKey).
        with manifest.file_path.open("rb") as f:
            reader = BackupReader(f, compression="none", encrypted=True, key=key, name=manifest.name)
            with contextlib.suppress(ChecksumMismatch, RestoreError):
                reader.read(1)
    raise RestoreError(f"{problem}; the database was not changed. Restore another backup")


def write_manifest(manifest: Manifest, directory: Path, *, trusted: bool = True) -> Manifest:
    """Write the manifest atomically, 0600; signed when SAFEMIGRATE_ENCRYPTION_KEY is set and
    ``trusted`` (a manifest that failed authentication is never signed by rewriting it)."""
    from safemigrate.conf import get_settings

    manifest = sign(manifest, get_settings().encryption_key if trusted else None)
    data = {k: v for k, v in asdict(manifest).items() if k != "path"}
    path = directory / (manifest.file + MANIFEST_SUFFIX)
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True).encode())
    return replace(manifest, path=path)


def read_json_file(path: Path, *, limit: int = MAX_MANIFEST_BYTES) -> Any:
    """Parse a small JSON file without following a symlink or reading more than ``limit`` bytes."""
    with open_regular(path) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"larger than {limit:,} bytes")
    return json.loads(data)


def read_manifest(path: Path) -> Manifest:
    """Load one manifest; a missing, malformed or foreign one is a clear RestoreError."""
    try:
        data = read_json_file(path)
    except FileNotFoundError as exc:
        raise BackupNotFound(f"no manifest at {path}") from exc
    except (OSError, ValueError) as exc:
        raise RestoreError(f"{path} is not a safemigrate manifest ({exc})") from exc
    return manifest_from_data(data, path=path, where=str(path))


def manifest_from_data(data: object, *, path: Path, where: str) -> Manifest:
    """A Manifest from parsed JSON that will live at ``path``; RestoreError naming ``where`` if it
    is not one of ours (see ``manifest_problem``)."""
    problem = manifest_problem(data, sidecar=path.name)
    if problem or not isinstance(data, dict):
        raise RestoreError(f"{where} is not a safemigrate manifest: {problem}")
    known = set(_hints())
    return Manifest(**{k: v for k, v in data.items() if k in known}, path=path)


MANIFEST_LOCK = ".manifests.lock"


@contextlib.contextmanager
def _folder_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on ``path``: threads (each opens its own file) and processes alike."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def update_manifest(manifest: Manifest, **changes: Any) -> Manifest:
    """Change some fields of a manifest on disk (pinned, verified, offsite, json_dump).

    A read-modify-write of the file as it is now, not of the caller's copy, under the folder's
    manifest lock (threads and processes alike): a pin made while a verification runs survives it.
    """
    if manifest.path is None:
        raise ValueError(f"manifest {manifest.name} has no file to update")
    from safemigrate.conf import get_settings

    directory = manifest.path.parent
    with _folder_lock(directory / MANIFEST_LOCK):
        current = read_manifest(manifest.path)  # the file as it is now, not the caller's copy
        trusted = authentication_problem(current, get_settings().encryption_key) is None
        return write_manifest(replace(current, **changes), directory, trusted=trusted)


def list_manifests(directory: Path, *, alias: str | None = None) -> list[Manifest]:
    """Every readable manifest in ``directory``, newest first; unreadable ones are skipped."""
    if not directory.is_dir():
        return []
    found: list[Manifest] = []
    for path in directory.glob(f"backup-*{MANIFEST_SUFFIX}"):
        try:
            manifest = read_manifest(path)
        except Exception as exc:  # noqa: BLE001 - a damaged manifest must not hide the others
            logger.warning("skipped %s: %s", path.name, exc)
            continue
        if alias is None or manifest.database == alias:
            found.append(manifest)
    found.sort(key=lambda m: (m.created, m.name), reverse=True)
    return found
