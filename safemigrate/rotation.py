"""Rotation: which backups to keep, by a simple count (SAFEMIGRATE_KEEP) or a grandfather-father-son
policy (SAFEMIGRATE_RETENTION); never the newest verified one, never a pinned one.

Classes keep anyone who can click "Back up now" from evicting the backups that matter: each rule
counts within a reason class, so admin clicks and manual backups only ever push out their own
kind, never a pre-migration, scheduled or pre-restore one; the size cap takes them first too.

The policy is pure functions over ``Item``s and a ``now`` (``decide``); ``rotate_backups`` applies
it to the folder, and to the off-site copies of what it deletes (safemigrate.offsite).
"""

from __future__ import annotations

import calendar
import json
import logging
import shutil
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from safemigrate import catalogue
from safemigrate.conf import backup_dir_for, get_settings
from safemigrate.constants import DUMP_MANIFEST_SUFFIX
from safemigrate.exceptions import SafeMigrateError
from safemigrate.leftovers import sweep_leftovers, sweep_scratch_databases
from safemigrate.lock import migration_lock
from safemigrate.manifest import Manifest, list_manifests

logger = logging.getLogger("safemigrate")


PROTECTED_CLASSES = ("pre_migrate", "scheduled", "pre_restore", "admin")
"""Reasons kept as classes of their own; every other reason (manual, --reason X) is "manual"."""
JSON_DUMPS = "json_dump"
"""The class of standalone JSON dumps (--json-only, the dump task)."""
_CAP_ORDER = {"manual": 0, "admin": 0, JSON_DUMPS: 0, "scheduled": 1}
"""The size cap deletes these classes first (oldest first within each); the rest after them."""


@dataclass(frozen=True)
class RetentionPolicy:
    """SAFEMIGRATE_RETENTION: every backup for ``keep_all_days``, then one a day, a week, a month,
    a year for the periods that follow, each after the other; optionally a total size cap."""

    keep_all_days: int = 7
    daily_days: int = 16
    weekly_weeks: int = 8
    monthly_months: int = 4
    yearly_years: int = 2
    max_total_bytes: int | None = None
    """Delete the oldest (manual and admin ones first) while the kept backups take more."""


@dataclass(frozen=True)
class Item:
    """What the policy needs of one backup (or standalone JSON dump)."""

    name: str
    created: datetime
    group: str
    size: int = 0
    verified: bool = False
    pinned: bool = False
    pinned_until: datetime | None = None


@dataclass(frozen=True)
class Decision:
    """Whether rotation keeps ``name``, and the rule that says so."""

    name: str
    group: str
    keep: bool
    why: str

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "class": self.group, "keep": self.keep, "why": self.why}


@dataclass(frozen=True)
class RotationResult:
    kept: list[str]
    deleted: list[str]
    dry_run: bool
    swept: list[str] = field(default_factory=list)
    """Leftovers of interrupted runs removed from the folder (see safemigrate.leftovers)."""
    decisions: list[Decision] = field(default_factory=list)
    """Every backup and standalone dump, newest first, with the rule that keeps or deletes it."""
    offsite_deleted: list[str] = field(default_factory=list)
    """Backups whose off-site copy was deleted with them (or would be, on a dry run)."""
    offsite_failed: list[str] = field(default_factory=list)
    """Off-site copies that could not be deleted (retried by the next rotation), with the reason."""
    policy: str = ""
    """Which rules applied: ``SAFEMIGRATE_KEEP=10`` or the retention policy."""


def reason_class(reason: str) -> str:
    return reason if reason in PROTECTED_CLASSES else "manual"


def retention_policy(value: object) -> RetentionPolicy | None:
    """SAFEMIGRATE_RETENTION as a policy: a dict, or ``key=value,…`` (from the environment); None
    when unset. ValueError, naming the bad part, when it is not one."""
    if value is None or value == "" or value == {}:
        return None
    if isinstance(value, str):
        pairs: dict[str, object] = {}
        for part in value.split(","):
            name, sep, text = part.partition("=")
            if not sep:
                raise ValueError(f"{part.strip()!r} is not key=value")
            pairs[name.strip()] = text.strip()
        value = pairs
    if not isinstance(value, dict):
        raise ValueError("it is neither a dict nor key=value pairs")
    known = {f.name for f in fields(RetentionPolicy)}
    unknown = sorted(str(k) for k in value if k not in known)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    numbers: dict[str, int | None] = {}
    for key, raw in value.items():
        if key == "max_total_bytes" and raw in (None, "", 0, "0"):
            numbers[key] = None
            continue
        try:
            number = int(str(raw))
        except ValueError:
            raise ValueError(f"{key} must be a whole number, not {raw!r}") from None
        if number < 0:
            raise ValueError(f"{key} must not be negative")
        numbers[key] = number
    return RetentionPolicy(**numbers)  # type: ignore[arg-type]


def _months_before(when: datetime, months: int) -> datetime:
    year, month = divmod(when.year * 12 + when.month - 1 - months, 12)
    day = min(when.day, calendar.monthrange(year, month + 1)[1])
    return when.replace(year=year, month=month + 1, day=day)


def _span(n: int, unit: str) -> str:
    return f"{n} {unit.removesuffix('s') if n == 1 else unit}"


def _pin(item: Item, now: datetime) -> str:
    if item.pinned:
        return "pinned"
    if item.pinned_until is not None and item.pinned_until > now:
        return f"pinned until {item.pinned_until.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    return ""


def _by_count(items: list[Item], keep: int) -> list[tuple[bool, str]]:
    seen: dict[str, int] = {}
    rules = []
    for item in items:
        index = seen[item.group] = seen.get(item.group, 0) + 1
        if index <= keep:
            rules.append((True, f"class {item.group}, {index} of {keep}"))
        else:
            rules.append((False, f"class {item.group}, beyond the newest {keep}"))
    return rules


def _by_policy(items: list[Item], policy: RetentionPolicy, now: datetime) -> list[tuple[bool, str]]:
    all_until = now - timedelta(days=policy.keep_all_days)
    daily_until = all_until - timedelta(days=policy.daily_days)
    weekly_until = daily_until - timedelta(weeks=policy.weekly_weeks)
    monthly_until = _months_before(weekly_until, policy.monthly_months)
    yearly_until = _months_before(monthly_until, 12 * policy.yearly_years)
    spans = [
        ("yearly", policy.yearly_years, "years"),
        ("monthly", policy.monthly_months, "months"),
        ("weekly", policy.weekly_weeks, "weeks"),
        ("daily", policy.daily_days, "days"),
        ("every backup for", policy.keep_all_days, "days"),
    ]
    beyond = next(
        (f"beyond {rule} {_span(n, unit)}" for rule, n, unit in spans if n), "beyond every rule (all 0)"
    )
    seen: set[tuple[str, str]] = set()
    rules = []
    for item in items:
        when = item.created.astimezone(UTC)
        if item.created >= all_until:
            rules.append((True, f"every backup for {_span(policy.keep_all_days, 'days')}"))
            continue
        if item.created >= daily_until:
            slot = f"daily {when:%Y-%m-%d}"
        elif item.created >= weekly_until:
            year, week, _ = when.isocalendar()
            slot = f"weekly {year}-W{week:02d}"
        elif item.created >= monthly_until:
            slot = f"monthly {when:%Y-%m}"
        elif item.created >= yearly_until:
            slot = f"yearly {when:%Y}"
        else:
            rules.append((False, beyond))
            continue
        if (item.group, slot) in seen:
            rules.append((False, f"{slot} keeps a newer one"))
        else:
            seen.add((item.group, slot))
            rules.append((True, slot))
    return rules


def decide(
    items: list[Item], *, now: datetime, keep: int = 10, policy: RetentionPolicy | None = None
) -> list[Decision]:
    """What rotation does with each of ``items`` (newest first), and why.

    The rules (``policy``, else the newest ``keep``) count within each class; then the newest
    verified item and every pinned one are kept whatever the rules say; then the size cap deletes
    the oldest kept items (manual and admin first, then scheduled, then the rest) while the kept
    ones take more than ``policy.max_total_bytes``, never a protected one.
    """
    items = sorted(items, key=lambda i: (i.created, i.name), reverse=True)
    rules = _by_count(items, keep) if policy is None else _by_policy(items, policy, now)
    newest_verified = next((i for i in items if i.verified), None)
    decisions: list[Decision] = []
    protected: set[str] = set()
    for item, (keep_it, why) in zip(items, rules, strict=True):
        shield = "newest verified" if item is newest_verified else _pin(item, now)
        if shield:
            protected.add(item.name)
            decisions.append(Decision(item.name, item.group, True, shield))
        else:
            decisions.append(Decision(item.name, item.group, keep_it, why))
    cap = policy.max_total_bytes if policy is not None else None
    if cap is None:
        return decisions
    sizes = {i.name: i.size for i in items}
    total = sum(sizes[d.name] for d in decisions if d.keep)
    order = sorted(
        (i for i, d in enumerate(decisions) if d.keep and d.name not in protected),
        key=lambda i: (_CAP_ORDER.get(decisions[i].group, 2), items[i].created),
    )
    for index in order:
        if total <= cap:
            break
        d = decisions[index]
        decisions[index] = Decision(
            d.name, d.group, False, f"over the size cap ({cap:,} bytes), oldest first"
        )
        total -= sizes[d.name]
    return decisions


def item_for(manifest: Manifest) -> Item:
    """A backup as the policy sees it (its size includes its JSON dump)."""
    dump_size = (manifest.json_dump or {}).get("size")
    return Item(
        name=manifest.name,
        created=manifest.created_at,
        group=reason_class(manifest.reason),
        size=manifest.size + (dump_size if isinstance(dump_size, int) else 0),
        verified=manifest.verified,
        pinned=manifest.pinned,
        pinned_until=datetime.fromisoformat(manifest.pinned_until) if manifest.pinned_until else None,
    )


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


def set_pinned(manifest: Manifest, *, pinned: bool) -> Manifest:
    """Pin (rotation never deletes it) or unpin a backup: the manifest first, then its catalogue
    row. Unpinning also ends a pre-migration backup's automatic, time-limited pin."""
    from safemigrate.manifest import update_manifest

    updated = update_manifest(manifest, pinned=pinned, **({} if pinned else {"pinned_until": None}))
    catalogue.record(updated)
    return updated


def delete_backup_files(manifest: Manifest) -> None:
    """Remove a backup's file, JSON dump and manifest (manifest last), and its catalogue row."""
    manifest.file_path.unlink(missing_ok=True)
    if manifest.json_dump and manifest.json_dump.get("file"):
        dump = manifest.file_path.with_name(manifest.json_dump["file"])
        dump.unlink(missing_ok=True)
        dump.with_name(dump.name + DUMP_MANIFEST_SUFFIX).unlink(missing_ok=True)
    if manifest.path is not None:
        manifest.path.unlink(missing_ok=True)
    catalogue.forget(manifest.name)


def rotation_policy(keep: int | None = None) -> tuple[int, RetentionPolicy | None, str]:
    """The rules in force: ``keep`` (``--keep``) wins, then SAFEMIGRATE_RETENTION, then
    SAFEMIGRATE_KEEP; with a one-line description. ValueError for a bad SAFEMIGRATE_RETENTION."""
    conf = get_settings()
    if keep is not None:
        return keep, None, f"--keep {keep} per class"
    try:
        policy = retention_policy(conf.retention)
    except ValueError as exc:
        raise ValueError(f"SAFEMIGRATE_RETENTION is not valid: {exc}") from exc
    if policy is None:
        return conf.keep, None, f"SAFEMIGRATE_KEEP={conf.keep} per class"
    cap = f", at most {policy.max_total_bytes:,} bytes" if policy.max_total_bytes else ""
    return (
        conf.keep,
        policy,
        "SAFEMIGRATE_RETENTION per class: "
        + ", ".join(
            f"{rule} {_span(n, unit)}"
            for rule, n, unit in (
                ("every backup for", policy.keep_all_days, "days"),
                ("one a day for", policy.daily_days, "days"),
                ("a week for", policy.weekly_weeks, "weeks"),
                ("a month for", policy.monthly_months, "months"),
                ("a year for", policy.yearly_years, "years"),
            )
        )
        + cap,
    )


def rotate_backups(
    *,
    alias: str = "default",
    keep: int | None = None,
    dry_run: bool = False,
    lock_timeout: float | None = None,
    now: datetime | None = None,
) -> RotationResult:
    """Delete the backups of ``alias`` that the rules do not keep (see ``decide``), their off-site
    copies, and leftovers of interrupted runs.

    The local files go under the lock: two workers never rotate the same files and rotation never
    deletes a backup that is being restored; LockTimeout after ``lock_timeout``
    (SAFEMIGRATE_LOCK_TIMEOUT) seconds. The off-site copies go after it (network calls never hold
    a migration up); one that cannot be deleted is kept in the status file and tried again by the
    next rotation. SafeMigrateError for a bad SAFEMIGRATE_RETENTION.
    """
    from safemigrate.offsite import delete_offsite_copies, offsite_copy_of

    try:
        keep, policy, described = rotation_policy(keep)
    except ValueError as exc:
        raise SafeMigrateError(f"{exc}; nothing was deleted. Fix the setting (see the README)") from exc
    now = now or datetime.now(UTC)
    with migration_lock(alias=alias, timeout=lock_timeout):
        directory = backup_dir_for(alias)
        swept = [] if dry_run else sweep_leftovers(directory) + sweep_scratch_databases(alias)
        backups = list_manifests(directory, alias=alias)
        # Standalone JSON dumps (--json-only, the dump task) are a class of their own.
        referenced = {m.json_dump["file"] for m in backups if m.json_dump and m.json_dump.get("file")}
        standalone = [(c, d) for c, d in _standalone_dumps(directory, alias) if d.name not in referenced]
        dumps = {d.name: d for _, d in standalone}
        items = [item_for(m) for m in backups] + [
            Item(name=path.name, created=created, group=JSON_DUMPS, size=_size(path))
            for created, path in standalone
        ]
        decisions = decide(items, now=now, keep=keep, policy=policy)
        doomed = {d.name for d in decisions if not d.keep}
        doomed_backups = [m for m in backups if m.name in doomed]
        offsite = [m for m in doomed_backups if offsite_copy_of(m)]
        if not dry_run:
            for manifest in doomed_backups:
                delete_backup_files(manifest)
                logger.info("rotation deleted %s", manifest.name)
            for name in doomed & dumps.keys():
                dump = dumps[name]
                dump.unlink(missing_ok=True)
                dump.with_name(dump.name + DUMP_MANIFEST_SUFFIX).unlink(missing_ok=True)
                logger.info("rotation deleted %s", dump.name)
    failed_offsite: list[str] = []
    if dry_run:
        deleted_offsite = [m.name for m in offsite]
    else:
        deleted_offsite, failed_offsite = delete_offsite_copies(alias=alias, manifests=doomed_backups)
    return RotationResult(
        kept=[d.name for d in decisions if d.keep],
        deleted=[d.name for d in decisions if not d.keep],
        dry_run=dry_run,
        swept=swept,
        decisions=decisions,
        offsite_deleted=deleted_offsite,
        offsite_failed=failed_offsite,
        policy=described,
    )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _standalone_dumps(directory: Path, alias: str) -> list[tuple[datetime, Path]]:
    """JSON dump files of ``alias`` that have a dump manifest, newest first."""
    found: list[tuple[datetime, Path]] = []
    for sidecar in directory.glob(f"backup-*-{alias}.json*{DUMP_MANIFEST_SUFFIX}"):
        try:
            created = datetime.fromisoformat(str(json.loads(sidecar.read_text()).get("created", "")))
        except (OSError, ValueError):
            continue
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        found.append((created, sidecar.with_name(sidecar.name[: -len(DUMP_MANIFEST_SUFFIX)])))
    return sorted(found, reverse=True)
