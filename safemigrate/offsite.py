"""Off-site copies: backups copied to, listed in and fetched from a Django storage (SAFEMIGRATE_STORAGE).

The storage is any backend in ``settings.STORAGES`` (FileSystemStorage on another disk, S3 through
django-storages, …); objects keep the local file names. Files are streamed both ways, never read
whole into memory. A copy never overwrites a different object silently, and a failed copy never
touches the local backup. Off-site copies follow the local retention: when rotation deletes a
backup, its copy goes too (``delete_offsite_copies``); nothing else is ever deleted from the storage.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages

from safemigrate import catalogue
from safemigrate.backup import ensure_backup_dir
from safemigrate.conf import get_settings
from safemigrate.constants import CHUNK, DUMP_MANIFEST_SUFFIX, MANIFEST_SUFFIX, MAX_MANIFEST_BYTES
from safemigrate.exceptions import BackupError, RestoreError, SafeMigrateError
from safemigrate.files import file_sha256, fsync_dir, stream_sha256
from safemigrate.leftovers import private_workdir
from safemigrate.manifest import (
    Manifest,
    check_trusted,
    is_backup_name,
    manifest_from_data,
    manifest_path_for,
    read_json_file,
    read_manifest,
    update_manifest,
    utc_now_iso,
)
from safemigrate.signals import offsite_copy_failed, send
from safemigrate.status import read_status, update_status

logger = logging.getLogger("safemigrate")

OFFSITE_FAILED = "offsite_failed"
"""Status-file section: backups whose last off-site copy failed ({name: {at, error}})."""
OFFSITE_DELETE_PENDING = "offsite_delete_pending"
"""Status-file section: off-site copies rotation could not delete yet ({name: {storage, objects, …}})."""


@dataclass(frozen=True)
class OffsiteResult:
    """One backup copied off-site: its updated manifest and what the storage holds now."""

    manifest: Manifest
    storage: str
    names: list[str]
    """Object names in the storage (data files first, the manifest last)."""
    kept: list[str]
    """Names that were already there, identical, and were left as they were."""
    size: int
    """Bytes of the backup file in the storage."""
    sha256_checked: bool
    """True when the stored objects were read back and their sha256 compared."""
    duration: float


@dataclass(frozen=True)
class OffsiteBackup:
    """A backup in the storage, as its manifest there describes it."""

    name: str
    created: str
    reason: str
    database: str
    sha256: str
    size: int | None
    """Bytes of the backup object; None when only the manifest is there (an interrupted copy)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created": self.created,
            "reason": self.reason,
            "database": self.database,
            "sha256": self.sha256,
            "size": self.size,
        }


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def get_storage(
    storage_alias: str | None = None, *, error: type[SafeMigrateError] = BackupError
) -> tuple[str, Storage]:
    """The storage ``storage_alias`` (default SAFEMIGRATE_STORAGE) and its alias, or ``error``."""
    alias = storage_alias or get_settings().storage
    if not alias:
        raise error(
            "no off-site storage: SAFEMIGRATE_STORAGE is not set; set it to a key of STORAGES (e.g. backups)"
        )
    try:
        return alias, storages[alias]
    except Exception as exc:  # InvalidStorageError, a missing django-storages, bad OPTIONS
        raise error(
            f"storage {alias!r} (SAFEMIGRATE_STORAGE) cannot be opened: {_one_line(exc)}; "
            "check STORAGES (and pip install 'django-storages[s3]' for S3)"
        ) from exc


@contextlib.contextmanager
def _storage_errors(error: type[SafeMigrateError], doing: str, after: str) -> Iterator[None]:
    """Turn any storage failure (network, credentials, permissions, missing object) into one line."""
    try:
        yield
    except SafeMigrateError:
        raise
    except Exception as exc:  # noqa: BLE001 - boto/OS errors have no common base class
        raise error(f"{doing} failed: {_one_line(exc)}; {after}") from exc


def _remote_sha256(storage: Storage, name: str) -> str:
    with storage.open(name, "rb") as f:
        return stream_sha256(f)


def _put(
    storage: Storage,
    storage_alias: str,
    path: Path,
    *,
    sha256: str,
    check_sha: bool,
    replace_if: bool = False,
) -> bool:
    """Stream ``path`` to the storage under its own name; True when an identical copy was kept.

    An existing object of the same size is kept (it is this file, copied before); one of another
    size is an error, unless ``replace_if`` (a manifest of the same backup, rewritten).
    """
    name = path.name
    size = path.stat().st_size
    kept = False
    if storage.exists(name):
        remote_size = storage.size(name)
        if replace_if:
            storage.delete(name)
        elif remote_size == size:
            kept = True
        else:
            raise BackupError(
                f"off-site copy refused: storage {storage_alias!r} already holds a different "
                f"{name} ({remote_size} bytes, the local file has {size}); it was not "
                "overwritten. Remove it from the storage if it is not needed, then copy again"
            )
    if not kept:
        with path.open("rb") as f:
            saved = storage.save(name, File(f, name=name))
        if saved != name:
            storage.delete(saved)
            raise BackupError(
                f"off-site copy of {name} failed: storage {storage_alias!r} stored it as "
                f"{saved} (another copy appeared meanwhile); copy again"
            )
    remote_size = storage.size(name)
    if remote_size != size:
        raise BackupError(
            f"off-site copy of {name} failed: storage {storage_alias!r} holds {remote_size} "
            f"bytes, the local file has {size}; copy again"
        )
    if check_sha and _remote_sha256(storage, name) != sha256:
        if kept:
            raise BackupError(
                f"off-site copy refused: storage {storage_alias!r} already holds a different "
                f"{name} (same size, another sha256); it was not overwritten. Remove it from "
                "the storage if it is not needed, then copy again"
            )
        raise BackupError(
            f"off-site copy of {name} failed: the copy in storage {storage_alias!r} does not "
            "match the local file's sha256; copy again"
        )
    return kept


def copy_offsite(
    *, manifest: Manifest, storage_alias: str | None = None, verify: bool = False
) -> OffsiteResult:
    """Copy a backup (file, JSON dump, their manifests) to the storage; record it in the manifest.

    The stored objects' sizes are always read back; their sha256 too when the storage is a
    FileSystemStorage or ``verify`` is True (this downloads them again). Raises BackupError with
    the local backup untouched, after sending ``offsite_copy_failed``.
    """
    try:
        return _copy(manifest=manifest, storage_alias=storage_alias, verify=verify)
    except SafeMigrateError as exc:
        send(offsite_copy_failed, alias=manifest.database, backup=manifest, error=str(exc))
        raise


def _copy(*, manifest: Manifest, storage_alias: str | None, verify: bool) -> OffsiteResult:
    started = datetime.now(UTC)
    alias, storage = get_storage(storage_alias)
    check_sha = verify or isinstance(storage, FileSystemStorage)
    path = manifest.file_path
    if not path.is_file() or manifest.path is None:
        raise BackupError(f"off-site copy of {manifest.name} failed: {path} is gone (rotated or deleted)")
    files: list[tuple[Path, str]] = [(path, manifest.sha256)]
    dump_file = (manifest.json_dump or {}).get("file")
    if dump_file:
        dump = path.with_name(dump_file)
        dump_manifest = dump.with_name(dump.name + DUMP_MANIFEST_SUFFIX)
        if dump.is_file():
            files.append((dump, str((manifest.json_dump or {}).get("sha256", ""))))
        if dump_manifest.is_file():
            files.append((dump_manifest, file_sha256(dump_manifest)))
    after = "the local backup is kept; check the storage, then copy again (backup --offsite)"
    names: list[str] = []
    kept: list[str] = []
    with _storage_errors(BackupError, f"off-site copy of {manifest.name} to {alias!r}", after):
        for each, sha256 in files:
            if _put(storage, alias, each, sha256=sha256 or file_sha256(each), check_sha=check_sha):
                kept.append(each.name)
            names.append(each.name)
        previous = manifest.offsite
        updated = update_manifest(
            manifest, offsite={"storage": alias, "name": manifest.file, "copied_at": utc_now_iso()}
        )
        try:
            _put_manifest(storage, alias, updated, check_sha=check_sha)
        except BaseException:
            update_manifest(updated, offsite=previous)
            raise
        names.append(manifest_path_for(path).name)
    catalogue.record(updated)
    update_status(manifest.database, OFFSITE_FAILED, lambda failed: failed.pop(manifest.name, None))
    duration = (datetime.now(UTC) - started).total_seconds()
    logger.info("copied %s to storage %r in %.2fs", manifest.name, alias, duration)
    return OffsiteResult(
        manifest=updated,
        storage=alias,
        names=names,
        kept=kept,
        size=manifest.size,
        sha256_checked=check_sha,
        duration=duration,
    )


def _put_manifest(storage: Storage, alias: str, manifest: Manifest, *, check_sha: bool) -> None:
    """The manifest goes last (its presence means the copy is complete); it replaces only its own."""
    if manifest.path is None:
        raise ValueError(f"manifest {manifest.name} was not written to a folder")
    name = manifest.path.name
    same_backup = False
    if storage.exists(name):
        remote = _read_remote_manifest(storage, name)
        if remote.get("sha256") != manifest.sha256:
            raise BackupError(
                f"off-site copy refused: storage {alias!r} already holds a manifest {name} of a "
                "different backup; it was not overwritten. Remove it from the storage if it is "
                "not needed, then copy again"
            )
        same_backup = True
    _put(
        storage,
        alias,
        manifest.path,
        sha256=file_sha256(manifest.path),
        check_sha=check_sha,
        replace_if=same_backup,
    )


def _read_remote_manifest(storage: Storage, name: str) -> dict[str, Any]:
    with storage.open(name, "rb") as f:
        data = f.read(CHUNK * 8)
    try:
        parsed = json.loads(data)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def list_offsite(*, storage_alias: str | None = None, alias: str | None = None) -> list[OffsiteBackup]:
    """The backups in the storage (of database ``alias``, or all), newest first."""
    storage_name, storage = get_storage(storage_alias)
    found: list[OffsiteBackup] = []
    with _storage_errors(
        BackupError, f"listing storage {storage_name!r}", "check the storage settings and access"
    ):
        try:
            _, files = storage.listdir("")
        except FileNotFoundError:  # a folder target that nothing was copied to yet
            files = []
        present = set(files)
        for each in files:
            if not (each.startswith("backup-") and each.endswith(MANIFEST_SUFFIX)):
                continue
            data = _read_remote_manifest(storage, each)
            name = str(data.get("file") or each.removesuffix(MANIFEST_SUFFIX))
            if alias is not None and data.get("database") != alias:
                continue
            found.append(
                OffsiteBackup(
                    name=name,
                    created=str(data.get("created", "")),
                    reason=str(data.get("reason", "")),
                    database=str(data.get("database", "")),
                    sha256=str(data.get("sha256", "")),
                    size=storage.size(name) if name in present else None,
                )
            )
    found.sort(key=lambda b: (b.created, b.name), reverse=True)
    return found


def _download(
    storage: Storage, name: str, dest: Path, *, size: int | None, sha256: str | None, what: str
) -> None:
    """Stream object ``name`` into ``dest`` (new, 0600, fsynced); RestoreError when it is not as
    expected. Never follows a symlink at ``dest`` and never writes more than ``size`` bytes."""
    digest = hashlib.sha256()
    written = 0
    limit = size if size is not None else MAX_MANIFEST_BYTES
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out, storage.open(name, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            written += len(chunk)
            if written > limit:
                break
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    if written > limit or (size is not None and written != size) or (sha256 and digest.hexdigest() != sha256):
        raise RestoreError(
            f"{name} in {what} is damaged ({written} bytes, sha256 {digest.hexdigest()[:12]}…, "
            "not what its manifest says); it was not used and the database was not changed. "
            "Fetch another backup"
        )


def fetch_offsite(*, name: str, alias: str = "default", storage_alias: str | None = None) -> Manifest:
    """Download backup ``name`` (and its manifest, JSON dump) into the backup folder of ``alias``.

    The storage may have been written by an attacker: the manifest is checked first (every name
    in it a plain backup name, its MAC when SAFEMIGRATE_ENCRYPTION_KEY is set), before any other
    object is downloaded. Then written under temporary names in the private work folder (new
    files, no symlink followed), fsynced, checked against the manifest's size and sha256, and
    renamed (manifest last) and catalogued. A backup already in the folder is used as it is.
    Raises RestoreError (missing object, damaged or foreign copy, storage unreachable); nothing
    is left behind.
    """
    storage_name, storage = get_storage(storage_alias, error=RestoreError)
    name = name.strip().removesuffix(MANIFEST_SUFFIX)
    if not is_backup_name(name):
        raise RestoreError(
            f"{name[:80]!r} is not a backup name; list the storage with `manage.py backups --offsite`"
        )
    what = f"storage {storage_name!r}"
    directory = ensure_backup_dir(alias)
    final = directory / name
    local_manifest = manifest_path_for(final)
    if final.is_file() and local_manifest.is_file():
        manifest = read_manifest(local_manifest)
        if manifest.size == final.stat().st_size:
            catalogue.record(manifest)
            return manifest
    work = private_workdir(directory)
    temps: list[Path] = []

    def temp(for_name: str) -> Path:
        path = work / f".{for_name}.fetch-{os.getpid()}"
        temps.append(path)
        return path

    try:
        with _storage_errors(RestoreError, f"fetching {name} from {what}", "the database was not changed"):
            if not storage.exists(local_manifest.name):
                raise RestoreError(
                    f"{what} has no backup {name!r}; list what it holds with `manage.py backups --offsite`"
                )
            manifest_tmp = temp(local_manifest.name)
            _download(storage, local_manifest.name, manifest_tmp, size=None, sha256=None, what=what)
            remote = manifest_from_data(
                read_json_file(manifest_tmp), path=local_manifest, where=f"{local_manifest.name} in {what}"
            )
            check_trusted(remote)
            if not storage.exists(remote.file):
                raise RestoreError(
                    f"{what} holds the manifest of {name} but not the backup file; fetch another backup"
                )
            moves: list[tuple[Path, Path, int | None, str | None]] = [
                (temp(remote.file), final, remote.size, remote.sha256)
            ]
            dump = remote.json_dump or {}
            dump_file = dump.get("file")
            if dump_file and storage.exists(dump_file):
                size = dump.get("size")
                moves.append(
                    (
                        temp(dump_file),
                        directory / dump_file,
                        size if isinstance(size, int) else -1,
                        str(dump.get("sha256") or "-"),
                    )
                )
                sidecar = dump_file + DUMP_MANIFEST_SUFFIX
                if storage.exists(sidecar):
                    moves.append((temp(sidecar), directory / sidecar, None, None))
            for tmp, dest, size, sha256 in moves:
                _download(storage, dest.name, tmp, size=size, sha256=sha256, what=what)
        for tmp, dest, _, _ in moves:
            tmp.replace(dest)
        manifest_tmp.replace(local_manifest)
        fsync_dir(directory)
    finally:
        for path in temps:
            path.unlink(missing_ok=True)
    manifest = read_manifest(local_manifest)
    catalogue.record(manifest)
    logger.info("fetched %s from %s into %s", name, what, directory)
    return manifest


def offsite_copy_of(manifest: Manifest) -> dict[str, Any] | None:
    """The manifest's record of its off-site copy (``{storage, name, copied_at}``), or None."""
    record = manifest.offsite
    return record if record and record.get("storage") and record.get("copied_at") else None


def offsite_failures(alias: str = "default") -> dict[str, dict[str, Any]]:
    """Backups of ``alias`` whose last off-site copy failed: {name: {at, error}}."""
    failed = read_status(alias).get(OFFSITE_FAILED)
    return failed if isinstance(failed, dict) else {}


def offsite_state(manifest: Manifest, failures: dict[str, dict[str, Any]]) -> str:
    """ "copied", "failed" (no copy, and the last try failed) or "not copied"."""
    if offsite_copy_of(manifest):
        return "copied"
    return "failed" if manifest.name in failures else "not copied"


def remember_offsite_failure(*, alias: str, backup: Manifest, error: str, **kwargs: Any) -> None:
    """For the admin and the health signal (safemigrate.W018) until a copy succeeds or it is deleted."""
    at = utc_now_iso()
    update_status(
        alias, OFFSITE_FAILED, lambda failed: failed.update({backup.name: {"at": at, "error": error}})
    )


def _objects(manifest: Manifest) -> list[str]:
    """The storage objects of a backup's copy, manifest first (see ``_delete_copy``)."""
    names = [manifest_path_for(manifest.file_path).name, manifest.file]
    dump_file = (manifest.json_dump or {}).get("file")
    if dump_file:
        names += [dump_file, dump_file + DUMP_MANIFEST_SUFFIX]
    return names


def _ours(name: str) -> bool:
    """An object name a copy of ours has: a backup name, or one with a manifest suffix."""
    return is_backup_name(name.removesuffix(MANIFEST_SUFFIX).removesuffix(DUMP_MANIFEST_SUFFIX))


def _delete_copy(storage: Storage, name: str, sha256: str, objects: list[str]) -> bool:
    """Delete one backup's objects, the manifest first: a manifest in the storage always means a
    complete copy. False (nothing deleted) when the stored manifest describes another backup."""
    manifest_name = objects[0]
    if (
        storage.exists(manifest_name)
        and _read_remote_manifest(storage, manifest_name).get("sha256") != sha256
    ):
        return False
    for each in objects:
        if storage.exists(each):
            storage.delete(each)
    return True


def delete_offsite_copies(*, alias: str, manifests: list[Manifest]) -> tuple[list[str], list[str]]:
    """Delete the off-site copies of ``manifests`` (backups rotation removed) and those it could
    not delete before; returns (deleted names, failures as "name: reason").

    Never raises: a copy that cannot be deleted now (storage unreachable) is kept in the status
    file and tried again by the next rotation; one whose stored manifest describes another backup
    is never deleted.
    """
    pending: dict[str, dict[str, Any]] = dict(read_status(alias).get(OFFSITE_DELETE_PENDING) or {})
    for manifest in manifests:
        record = offsite_copy_of(manifest)
        if record and manifest.path is not None:
            pending[manifest.name] = {
                "storage": str(record["storage"]),
                "sha256": manifest.sha256,
                "objects": _objects(manifest),
            }
    deleted: list[str] = []
    failed: dict[str, str] = {}
    retry: set[str] = set()
    for name, job in sorted(pending.items()):
        objects = [str(o) for o in job.get("objects") or [] if _ours(str(o))]
        try:
            storage_alias, storage = get_storage(str(job.get("storage") or ""))
            with _storage_errors(
                BackupError, f"deleting the off-site copy of {name}", "tried again next time"
            ):
                ours = bool(objects) and _delete_copy(storage, name, str(job.get("sha256") or ""), objects)
        except SafeMigrateError as exc:
            failed[name] = str(exc)
            retry.add(name)
            logger.error("rotation could not delete the off-site copy of %s: %s", name, exc)
            continue
        if not ours:
            failed[name] = f"storage {storage_alias!r} holds a different {name}; it was left as it is"
            logger.warning("rotation: %s", failed[name])
            continue
        deleted.append(name)
        logger.info("rotation deleted the off-site copy of %s from %r", name, storage_alias)

    def remember(section: dict[str, Any]) -> None:
        # Only the names handled here: another rotation may have recorded its own meanwhile.
        for name in pending:
            section.pop(name, None)
        section.update({n: {**pending[n], "error": failed[n], "at": utc_now_iso()} for n in retry})

    if pending:
        update_status(alias, OFFSITE_DELETE_PENDING, remember)
    gone = {m.name for m in manifests}
    if gone & offsite_failures(alias).keys():  # deleted locally: their copy failures no longer matter

        def forget(section: dict[str, Any]) -> None:
            for name in gone:
                section.pop(name, None)

        update_status(alias, OFFSITE_FAILED, forget)
    return deleted, [f"{n}: {e}" for n, e in sorted(failed.items())]
