"""The Backup table as a catalogue of the manifests on disk: find, list and resync.

Every function here works when the catalogue table is missing or the database is broken: the
backup folder alone is enough.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, router
from django.utils import timezone

from safemigrate.conf import backup_dir_for, get_settings
from safemigrate.constants import MANIFEST_SUFFIX
from safemigrate.exceptions import BackupNotFound, SafeMigrateError
from safemigrate.journal import JournalEntry, journal_path, read_journal, utc_iso
from safemigrate.manifest import (
    Manifest,
    authentication_problem,
    list_manifests,
    read_manifest,
)

logger = logging.getLogger("safemigrate")


def _catalogue_alias() -> str:
    from safemigrate.models import Backup

    return router.db_for_write(Backup)


def db_datetime(value: datetime | str) -> datetime:
    """A manifest's (ISO, UTC) time as the database expects it: aware with USE_TZ, else naive local."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if timezone.is_naive(value):  # older manifests; always written in UTC
        value = value.replace(tzinfo=UTC)
    return value if settings.USE_TZ else timezone.make_naive(value)


def _fields(manifest: Manifest) -> dict[str, object]:
    from safemigrate.offsite import offsite_copy_of  # offsite imports this module

    failure = manifest.verification_failure
    return {
        "path": str(manifest.file_path),
        "created": db_datetime(manifest.created),
        "reason": manifest.reason,
        "database": manifest.database,
        "vendor": manifest.vendor,
        "size": manifest.size,
        "sha256": manifest.sha256,
        "compression": manifest.compression,
        "encrypted": bool(manifest.encryption),
        "verified": manifest.verified,
        "verified_at": db_datetime(manifest.verified_at) if manifest.verified_at else None,
        "verification_failed_at": db_datetime(failure["at"]) if failure else None,
        "verification_error": failure.get("error", "") if failure else "",
        "pinned": manifest.pinned,
        "pinned_until": db_datetime(manifest.pinned_until) if manifest.pinned_until else None,
        "offsite_copied": offsite_copy_of(manifest) is not None,
        "migrations": manifest.migrations,
        "row_counts": manifest.row_counts,
        "json_dump": manifest.json_dump,
        "duration": manifest.duration,
    }


def record(manifest: Manifest) -> int | None:
    """Upsert the catalogue row for ``manifest``; None (logged) when the catalogue is unavailable."""
    from safemigrate.models import Backup

    try:
        obj, _ = Backup.objects.using(_catalogue_alias()).update_or_create(
            name=manifest.name, defaults=_fields(manifest)
        )
    except DatabaseError as exc:
        logger.debug("catalogue not updated for %s: %s", manifest.name, exc)
        return None
    return obj.pk


def forget(name: str) -> None:
    from safemigrate.models import Backup

    try:
        Backup.objects.using(_catalogue_alias()).filter(name=name).delete()
    except DatabaseError as exc:
        logger.debug("catalogue not updated (forget %s): %s", name, exc)


def sync_catalogue(*, alias: str | None = None) -> dict[str, int]:
    """Rebuild the catalogue from the folder(s): add/update every manifest, drop rows with neither;
    then add back the migration runs the table lacks from the journal (``sync_runs``)."""
    from safemigrate.models import Backup

    aliases = [alias] if alias else _known_aliases()
    seen: set[str] = set()
    added = 0
    for each in aliases:
        for manifest in list_manifests(backup_dir_for(each), alias=each):
            seen.add(manifest.name)
            if record(manifest) is not None:
                added += 1
    removed = 0
    try:
        stale = Backup.objects.using(_catalogue_alias()).exclude(name__in=seen)
        if alias:
            stale = stale.filter(database=alias)
        for row in stale:
            if not row.on_disk and not row.manifest_path.exists():
                row.delete()
                removed += 1
    except DatabaseError as exc:
        logger.debug("catalogue not pruned: %s", exc)
    # Every database's runs: the restored database may hold the run log of the others too.
    return {"listed": added, "removed": removed, "runs": sync_runs()}


def sync_runs(*, alias: str | None = None) -> int:
    """Add to the MigrationRun table every run of the journal(s) it lacks; how many were added.

    A restore brings the table back as it was in the backup: the runs since then come back from
    the journal (safemigrate.journal). Rows the journal lacks (runs from before it existed) stay:
    history is only ever added to.
    """
    from safemigrate.models import MigrationRun

    entries: dict[tuple[str, str, str, str, int | None], JournalEntry] = {}
    paths: set[Path] = set()
    for each in [alias] if alias else _known_aliases():
        path = journal_path(each)
        if path in paths:
            continue
        paths.add(path)
        for entry in read_journal(path):
            if alias is None or entry.database == alias:
                entries.setdefault(entry.key, entry)
    if not entries:
        return 0
    runs = MigrationRun.objects.using(router.db_for_write(MigrationRun))
    try:
        rows = runs.filter(database__in={e.database for e in entries.values()}).values_list(
            "database", "started", "status", "host", "pid"
        )
        present = {(db, utc_iso(started), status, host, pid) for db, started, status, host, pid in rows}
        ids = catalogue_ids()
        missing = [
            MigrationRun(
                started=db_datetime(e.started),
                finished=db_datetime(e.finished) if e.finished else None,
                duration=e.duration,
                database=e.database,
                status=e.status,
                rollback=e.rollback,
                plan=e.plan,
                backup_id=ids.get(e.backup_name),
                backup_name=e.backup_name,
                error=e.error,
                host=e.host,
                pid=e.pid,
            )
            for key, e in entries.items()
            if key not in present
        ]
        runs.bulk_create(missing)
    except DatabaseError as exc:  # no table yet (a backup older than safemigrate): next time
        logger.debug("migration runs not rebuilt from the journal: %s", exc)
        return 0
    if missing:
        logger.info("added %d migration run(s) from the journal", len(missing))
    return len(missing)


def _known_aliases() -> list[str]:
    from django.db import connections

    return list(connections)


def catalogue_ids() -> dict[str, int]:
    """name -> id, or empty when the catalogue is unavailable."""
    from safemigrate.models import Backup

    try:
        return dict(Backup.objects.using(_catalogue_alias()).values_list("name", "pk"))
    except DatabaseError:
        return {}


def list_backups(*, alias: str | None = None) -> list[Manifest]:
    """Backups of ``alias`` (or every database) from the folder, newest first."""
    aliases = [alias] if alias else _known_aliases()
    seen_dirs: set[Path] = set()
    found: list[Manifest] = []
    for each in aliases:
        directory = backup_dir_for(each)
        if directory in seen_dirs:
            continue
        seen_dirs.add(directory)
        found.extend(list_manifests(directory, alias=alias))
    found.sort(key=lambda m: (m.created, m.name), reverse=True)
    return found


def catalogued_backups(*, alias: str) -> list[Manifest] | None:
    """Backups of ``alias`` as the catalogue lists them, newest first, in one query and without
    opening a manifest: name, size, dates, verified and pinned only (no checksum, no path), for
    pages that summarise many (the admin's banner). None when the catalogue cannot be read; the
    folder stays the source of truth (``sync_catalogue``)."""
    from safemigrate.models import Backup

    try:
        rows = list(
            Backup.objects.using(_catalogue_alias())
            .filter(database=alias)
            .order_by("-created", "-name")
            .values_list("name", "size", "created", "verified", "verified_at", "pinned", "encrypted")
        )
    except DatabaseError:
        return None
    return [
        Manifest(
            name=name,
            file=name,
            sha256="",
            size=size,
            created=_iso(created),
            reason="",
            vendor="",
            database=alias,
            database_name="",
            compression="",
            encryption="aes-256-gcm" if encrypted else None,
            verified=verified,
            verified_at=_iso(verified_at) if verified_at else None,
            pinned=pinned,
        )
        for name, size, created, verified, verified_at, pinned, encrypted in rows
    ]


def _iso(value: datetime) -> str:
    """A catalogue time as the manifests write it (ISO 8601, UTC)."""
    if timezone.is_naive(value):  # USE_TZ = False: naive local time
        value = timezone.make_aware(value)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def find_backup(ref: str | int, *, alias: str) -> Manifest:
    """A backup by catalogue id, by name (with or without extension) or by file path."""
    text = str(ref).strip()
    path = Path(text)
    if path.suffix and (path.is_file() or "/" in text):
        if not path.is_file():
            raise BackupNotFound(f"no backup file at {path}")
        manifest_path = path if text.endswith(MANIFEST_SUFFIX) else Path(text + MANIFEST_SUFFIX)
        if not manifest_path.is_file():
            raise BackupNotFound(
                f"{path} has no manifest beside it ({manifest_path.name}); copy the manifest "
                "too, or use restore --file"
            )
        return read_manifest(manifest_path)
    backups = list_backups(alias=alias)
    if text.isdigit():
        ids = catalogue_ids()
        by_id = {v: k for k, v in ids.items()}
        name = by_id.get(int(text))
        for manifest in backups:
            if manifest.name == name:
                return manifest
    for manifest in backups:
        if text in (manifest.name, manifest.file) or manifest.name.startswith(text + "."):
            return manifest
    raise BackupNotFound(
        f"no backup {text!r} for database {alias!r} in {backup_dir_for(alias)}; "
        "list them with `manage.py backups` (or backups --rescan)"
    )


def sweep_leftover_files(*, alias: str | None = None) -> list[str]:
    """Remove leftovers of interrupted runs from the backup folder(s); the names removed.

    Only while the migration lock is free (taken without waiting): a backup or restore in another
    container, whose pid this host cannot see, holds it, so its files are never taken for a dead
    process's. A busy or unreachable lock skips the sweep (rotation and the next backup do it).
    """
    from safemigrate.leftovers import sweep_leftovers, sweep_scratch_databases
    from safemigrate.lock import migration_lock

    aliases = [alias] if alias else _known_aliases()
    removed: list[str] = []
    swept: set[Path] = set()
    for each in aliases:
        directory = backup_dir_for(each)
        if directory in swept:
            continue
        try:
            with migration_lock(alias=each, timeout=0):
                removed.extend(sweep_leftovers(directory))
                removed.extend(sweep_scratch_databases(each))
        except (SafeMigrateError, DatabaseError) as exc:
            logger.debug("leftovers of %s not swept now: %s", directory, exc)
            continue
        swept.add(directory)
    return removed


def latest_backup(*, alias: str, verified_only: bool = True) -> Manifest:
    key = get_settings().encryption_key
    for manifest in list_backups(alias=alias):
        if authentication_problem(manifest, key):
            continue  # with a key, a manifest we cannot authenticate is never "the latest"
        if manifest.verified or not verified_only:
            return manifest
    raise BackupNotFound(
        f"no {'verified ' if verified_only else ''}backup of database {alias!r} in "
        f"{backup_dir_for(alias)}; make one with `manage.py backup`"
    )
