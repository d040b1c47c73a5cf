"""How a backup is restored: checksum while staging a scratch copy, check it, safety backup, swap in.

The live database is touched only by the final ``swap_in``, which is all-or-nothing; every
earlier failure (damaged file, wrong key, failed check, full disk) leaves it exactly as it was.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.db import connections
from django.db.migrations.loader import MigrationLoader

from safemigrate import catalogue, interrupts
from safemigrate.backup import BackupResult, create_backup, ensure_backup_dir
from safemigrate.codec import BackupReader, detect_format
from safemigrate.conf import get_settings
from safemigrate.exceptions import (
    BackupError,
    ChecksumMismatch,
    IntegrityCheckFailed,
    RestoreError,
)
from safemigrate.files import removals_joined
from safemigrate.leftovers import private_workdir
from safemigrate.lock import migration_lock
from safemigrate.manifest import Manifest, check_trusted, sign, update_manifest
from safemigrate.provenance import check_made_here, unexpected_schema_objects
from safemigrate.signals import restore_done, send, verification_failed
from safemigrate.vendors import get_adapter
from safemigrate.vendors.base import Progress, Scratch, VendorAdapter

logger = logging.getLogger("safemigrate")


@dataclass(frozen=True)
class RestoreResult:
    manifest: Manifest
    safety_backup: BackupResult | None
    duration: float
    row_counts: dict[str, int]
    kept: str | None = None
    """The replaced database, kept (``keep_replaced``): a renamed database or a copied file."""
    unapplied: list[str] = field(default_factory=list)
    """Migrations this code has that the restored database lacks: ``migrate`` must run next."""


@dataclass(frozen=True)
class RestorePreview:
    """What a restore would change, for a confirmation prompt or page."""

    manifest: Manifest
    current_migrations: dict[str, list[str]]
    to_unapply: list[str]
    to_reapply: list[str]
    unknown_to_code: list[str]
    row_counts: list[tuple[str, int | None, int | None]]
    warnings: list[str] = field(default_factory=list)
    """Reasons to doubt this backup fits this database (another database, newer code)."""
    current_error: str | None = None
    """Why the live database cannot be read, if it cannot (often the reason to restore)."""
    migrate_after: list[str] = field(default_factory=list)
    """Of ``to_unapply``, those this code has: ``migrate`` must apply them again after the restore."""
    known: bool = True
    """False for a file without a manifest: its migrations and row counts are unknown until it is
    unpacked, so the lists above say nothing about it."""

    @property
    def changed_tables(self) -> list[tuple[str, int | None, int | None]]:
        """The ``row_counts`` (table, then, now) that the restore changes."""
        return [row for row in self.row_counts if row[1] != row[2]]


ENGINES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MySQL/MariaDB"}


def has_manifest(manifest: Manifest) -> bool:
    """False for one inferred by ``manifest_for_file`` (a real manifest always has a checksum)."""
    return bool(manifest.sha256)


def check_engine(manifest: Manifest, *, alias: str) -> None:
    """RestoreError at once when ``manifest`` is another engine's backup: no flag makes it fit."""
    vendor = get_adapter(alias).vendor
    if manifest.vendor == vendor:
        return
    dump = manifest.json_dump and manifest.path and manifest.path.with_name(str(manifest.json_dump["file"]))
    how = (
        f"load its JSON dump instead: manage.py restore --json {dump}"
        if dump
        else "load a JSON dump instead (make one where the data is with manage.py backup "
        "--json-only, then run manage.py restore --json FILE here)"
    )
    raise RestoreError(
        f"{manifest.name} is a backup of a {ENGINES.get(manifest.vendor, manifest.vendor)} database "
        f"and database {alias!r} is {ENGINES.get(vendor, vendor)}: another engine's backup cannot "
        f"be restored into it. To move the data across engines, {how}"
    )


def unapplied_migrations(*, alias: str) -> list[str]:
    """The migrations of this code that database ``alias`` lacks ([] when they cannot be read)."""
    from safemigrate.plan import pending_plan

    try:
        return [label for label in pending_plan(alias=alias).labels() if not label.startswith("-")]
    except Exception:  # noqa: BLE001 - an unreadable database is reported elsewhere
        return []


def manifest_for_file(path: Path, *, alias: str) -> Manifest:
    """A manifest for ``restore --file``: the sidecar if present, else one inferred from the bytes."""
    from safemigrate.manifest import manifest_path_for, read_manifest

    if not path.is_file():
        raise RestoreError(f"no file at {path}")
    sidecar = manifest_path_for(path)
    if sidecar.is_file():
        return read_manifest(sidecar)
    compression, encrypted = detect_format(path)
    if encrypted:
        # Compression is inside the encryption; the extension tells it.
        compression = "zstd" if ".zst" in path.name else "gzip" if ".gz" in path.name else "none"
    adapter = get_adapter(alias)
    inferred = Manifest(
        name=path.name,
        file=path.name,
        sha256="",
        size=path.stat().st_size,
        created=datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(),
        reason="external",
        vendor=adapter.vendor,
        database=alias,
        database_name="",
        compression=compression,
        encryption="aes-256-gcm" if encrypted else None,
        path=sidecar,
    )
    # The user named this file; with a key, decryption itself proves it (unencrypted is refused).
    return sign(inferred, get_settings().encryption_key if encrypted else None)


def _stage(
    adapter: VendorAdapter,
    manifest: Manifest,
    *,
    workdir: Path,
    progress: Progress | None,
    check: bool = True,
) -> Scratch:
    """Decode the file into a scratch copy, checking its sha256 on the way; live is untouched.

    ``check=False`` leaves ``check_scratch`` to the caller (to run it during the swap).
    """
    path = manifest.file_path
    check_trusted(manifest)
    if not path.is_file():
        raise RestoreError(f"backup file {path} is missing; restore another backup (restore --list)")
    check_engine(manifest, alias=adapter.alias)
    if manifest.size and path.stat().st_size != manifest.size:
        raise RestoreError(
            f"{manifest.name} is {path.stat().st_size} bytes but its manifest says "
            f"{manifest.size}: the file is truncated or damaged; restore another backup"
        )
    if progress:
        progress(f"checking and unpacking {manifest.name}")
    limit = _decode_limit(manifest, workdir)
    with path.open("rb") as f:
        reader = BackupReader(
            f,
            compression=manifest.compression,
            encrypted=bool(manifest.encryption),
            key=get_settings().encryption_key,
            name=manifest.name,
            limit=limit,
        )
        try:
            scratch = adapter.restore_to_scratch(reader, workdir=workdir, progress=progress)
        except OSError as exc:
            raise RestoreError(
                f"restore failed: {exc.strerror or exc} unpacking {manifest.name} in {workdir}; "
                "the database was not changed. Free space and try again"
            ) from exc
        try:
            reader.check(manifest.sha256)
        except BaseException:
            adapter.drop_scratch(scratch)
            raise
    if check:
        try:
            check_scratch(adapter, manifest, scratch)
        except BaseException:
            adapter.drop_scratch(scratch)
            raise
    return scratch


def _decode_limit(manifest: Manifest, workdir: Path) -> int:
    """How many decoded bytes a backup may unpack to: its manifest's ``raw_size``, else (a file
    without one) the free space less SAFEMIGRATE_FREE_SPACE_RESERVE, so a crafted file cannot fill
    the volume that holds the live database."""
    if manifest.raw_size:
        return manifest.raw_size
    return max(shutil.disk_usage(workdir).free - get_settings().free_space_reserve, 0)


def check_scratch(
    adapter: VendorAdapter, manifest: Manifest, scratch: Scratch, *, structure: bool = True
) -> None:
    """The restored copy is a sound database with the manifest's row counts, or RestoreError.

    ``structure=False`` skips the integrity check (row counts only), for a copy already proven
    to be a backup that was checked when it was made.
    """
    errors = adapter.integrity_errors(scratch, level="quick") if structure else []
    if not errors and manifest.row_counts:
        counts = adapter.row_counts(scratch)
        differ = sorted(
            t for t in set(counts) | set(manifest.row_counts) if counts.get(t) != manifest.row_counts.get(t)
        )
        if differ:
            errors = [f"row counts differ from its manifest in {', '.join(differ[:5])}"]
    if errors and not has_manifest(manifest):
        raise RestoreError(
            f"{manifest.name} is damaged or truncated ({errors[0]}); it has no manifest, so there "
            "is no checksum to compare it with. The database was not changed. Restore another backup"
        )
    if errors:
        raise RestoreError(
            f"{manifest.name} does not hold the database its manifest describes ({errors[0]}); "
            "the database was not changed. Restore another backup"
        )


def restore_backup(
    *,
    backup: Manifest,
    alias: str = "default",
    safety_backup: bool = True,
    progress: Progress | None = None,
    resync_catalogue: bool = True,
    keep_replaced: bool = False,
) -> RestoreResult:
    """Replace database ``alias`` with ``backup``; all-or-nothing, the backup files untouched.

    ``keep_replaced`` keeps the database it replaces, exactly as it was at the swap.
    """
    started = time.monotonic()
    adapter = get_adapter(alias)
    # removals_joined: the scratch copy is unlinked on another thread while the restored
    # database is read back, and is gone before the lock is released.
    with migration_lock(alias=alias), removals_joined():
        workdir = private_workdir(ensure_backup_dir(alias))
        scratch = _stage(adapter, backup, workdir=workdir, progress=progress, check=False)
        # A verified backup was checked when it was made (its snapshot passed the integrity
        # check, the file was read back and decoded in full), and _stage has just matched the
        # file to its manifest's sha256: the copy is that checked database, byte for byte, so
        # the integrity check is not repeated (verifybackup does it on demand). Anything else
        # (no checksum, never verified) gets the full check before it can replace anything.
        proven = bool(backup.sha256) and backup.verified
        check = functools.partial(check_scratch, adapter, backup, scratch, structure=not proven)
        safety: BackupResult | None = None
        try:
            if safety_backup:
                check()  # first, so a bad backup leaves no safety backup behind
                if progress:
                    progress("taking a safety backup of the current database")
                try:
                    safety = create_backup(alias=alias, reason="pre_restore", progress=None)
                except (BackupError, IntegrityCheckFailed) as exc:
                    raise RestoreError(
                        f"restore stopped: the safety backup of the current database failed "
                        f"({exc}). If the current database is damaged, restore with "
                        "--no-safety-backup"
                    ) from exc
            if progress:
                progress("replacing the live database")
            connection = connections[alias]
            connection.close()
            with interrupts.deferred():
                if safety_backup:
                    kept = adapter.swap_in(scratch, progress=progress, keep=keep_replaced)
                else:  # checked while it is copied in; the copy commits only if it passes
                    kept = adapter.swap_in_checked(
                        scratch, check=check, progress=progress, keep=keep_replaced
                    )
        except BaseException:
            adapter.drop_scratch(scratch)
            raise
        connection.close()
        # The pages swapped in are those checked above (or proven), row counts included; after
        # the swap, every table must read back. (Not compared with the manifest again: a web
        # or worker process may already be writing to the restored database.)
        try:
            counts = adapter.row_counts()
            error = None
        except Exception as exc:  # noqa: BLE001 - any failure to read it back is the finding
            counts, error = {}, f"it cannot be read: {exc}"
        if error is not None:
            raise RestoreError(
                f"the restored database fails its check ({error}); "
                + (f"the safety backup {safety.manifest.name} holds the state before. " if safety else "")
                + "Try another backup"
            )
        clear_caches()
        if resync_catalogue:
            # The catalogue and the run log were restored too: rebuild them from the folder.
            catalogue.sync_catalogue(alias=alias)
    duration = time.monotonic() - started
    unapplied = unapplied_migrations(alias=alias)  # the caller says "run migrate" (not a rollback)
    send(restore_done, alias=alias, backup=backup, safety_backup=safety and safety.manifest)
    logger.info("restored %s into %s in %.2fs", backup.name, adapter.database_name(), duration)
    return RestoreResult(
        manifest=backup,
        safety_backup=safety,
        duration=duration,
        row_counts=counts,
        kept=kept,
        unapplied=unapplied,
    )


def clear_caches() -> None:
    """Forget what Django cached from the database it had before (content types): after a restore,
    a rolled-back plan or a replaced dump, those rows may no longer exist."""
    from django.contrib.contenttypes.models import ContentType

    with contextlib.suppress(Exception):
        ContentType.objects.clear_cache()


def verify_backup(
    *,
    backup: Manifest,
    alias: str = "default",
    progress: Progress | None = None,
    trust_file: bool = False,
) -> Manifest:
    """Checksum + restore into a scratch copy + integrity check + row counts; marks it verified.

    A server engine's backup must be authenticated or made here (``trust_file``: the operator
    vouches for it), as its SQL runs on the live server.
    """
    adapter = get_adapter(alias)
    if not trust_file:
        check_made_here(backup, vendor=adapter.vendor, key=get_settings().encryption_key)
    workdir = private_workdir(ensure_backup_dir(alias))
    adapter.confine_scratch = True  # loaded and read as SAFEMIGRATE_SCRATCH_USER where configured
    try:
        scratch = _stage(adapter, backup, workdir=workdir, progress=progress)
    except (ChecksumMismatch, RestoreError) as exc:
        # Damaged: it no longer counts as verified (rotation, W001, restore --latest), and the
        # failure is kept, so it never looks like a backup that was just never verified.
        if backup.file_path.is_file():  # one rotated away meanwhile is gone, not damaged
            if backup.path is not None and backup.path.is_file():
                failure = {"at": datetime.now(UTC).isoformat(timespec="microseconds"), "error": str(exc)}
                catalogue.record(
                    update_manifest(backup, verified=False, verified_at=None, verification_failure=failure)
                )
            send(verification_failed, alias=alias, backup=backup, error=str(exc))
        raise
    finally:
        adapter.confine_scratch = False
    adapter.drop_scratch(scratch)
    if backup.path is not None and backup.path.is_file():
        backup = update_manifest(
            backup,
            verified=True,
            verified_at=datetime.now(UTC).isoformat(timespec="microseconds"),
            verification_failure=None,
        )
        catalogue.record(backup)
    return backup


def restore_preview(*, backup: Manifest, alias: str = "default") -> RestorePreview:
    """Migrations and row counts then (the backup) vs now (the live database)."""
    adapter = get_adapter(alias)
    warnings: list[str] = []
    current_error = None
    try:
        current = adapter.applied_migrations()
        now_counts: dict[str, int] = adapter.row_counts()
    except Exception as exc:  # noqa: BLE001 - a broken live database is why people restore
        current, now_counts = {}, {}
        current_error = f"the current database cannot be read ({exc})"
    then = {(a, n) for a, names in backup.migrations.items() for n in names}
    now = {(a, n) for a, names in current.items() for n in names}
    try:
        known = set(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)
    except Exception:  # noqa: BLE001
        known = set()
    unknown = sorted(f"{a}.{n}" for a, n in then - known) if known else []
    if unknown:
        warnings.append(
            f"the backup has {len(unknown)} migration(s) this code does not know "
            f"(e.g. {unknown[0]}): it was made by newer code"
        )
    if backup.vendor != adapter.vendor:
        try:
            check_engine(backup, alias=alias)
        except RestoreError as exc:
            warnings.append(str(exc))
    if backup.database != alias:
        warnings.append(f"the backup is of database {backup.database!r}, not {alias!r}")
    own_name = adapter.database_name()
    if backup.database_name and own_name and Path(backup.database_name).name != Path(own_name).name:
        warnings.append(f"the backup was made from {backup.database_name}, not {own_name}")
    extra = unexpected_schema_objects(backup, alias=alias)
    if extra:
        warnings.append(
            f"the backup has {len(extra)} trigger(s) or view(s) this database does not have "
            f"({', '.join(extra[:3])}): not made by your migrations? Restore it only if you trust it"
        )
    tables = sorted(set(backup.row_counts) | set(now_counts))
    described = has_manifest(backup)
    return RestorePreview(
        manifest=backup,
        current_migrations=current,
        to_unapply=sorted(f"{a}.{n}" for a, n in now - then) if described else [],
        to_reapply=sorted(f"{a}.{n}" for a, n in then - now) if described else [],
        migrate_after=sorted(f"{a}.{n}" for a, n in (now - then) & known) if described else [],
        unknown_to_code=unknown,
        row_counts=[(t, backup.row_counts.get(t), now_counts.get(t)) for t in tables] if described else [],
        warnings=warnings,
        current_error=current_error,
        known=described,
    )
