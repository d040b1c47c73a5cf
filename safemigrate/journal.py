"""The run journal: every guarded migrate run, kept beside the backups so no restore can rewind it.

The MigrationRun table lives in the database a restore replaces: on its own, a restore would take
the log back to the backup's day (a rolled-back run, and its W002, gone). So each run is also
appended to ``<backup folder>/.safemigrate-runs.jsonl``, one JSON object a line, under the folder's
manifest lock and fsynced, and the table is rebuilt from it (``catalogue.sync_runs``) after every
restore and by ``backups --rescan``, as the Backup catalogue is from the manifests.

Whoever can write to the backup folder can write this file: it is read as untrusted input (a bounded
read, every field typed and bounded, bad lines skipped with one warning). With
SAFEMIGRATE_ENCRYPTION_KEY set, each line carries an HMAC and a line without a valid one is skipped.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import stat
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.utils import timezone

from safemigrate.codec import fsync_dir, mac_of
from safemigrate.conf import backup_dir_for, get_settings
from safemigrate.manifest import MANIFEST_LOCK, _folder_lock, is_backup_name

logger = logging.getLogger("safemigrate")

JOURNAL_FILE = ".safemigrate-runs.jsonl"
FORMAT_VERSION = 1
MAX_JOURNAL_BYTES = 32 << 20
"""Read at most this much (the newest part); a run is about 1 KB, so years of deploys fit."""
MAX_LINE_BYTES = 256 << 10
MAX_ERROR_CHARS = 16_000
"""A longer error (a traceback in a message) is cut when written, so every line stays bounded."""
MAX_PLAN_ITEMS = 10_000
_STATUSES = ("applied", "refused", "rolled_back", "failed")  # MigrationRun.Status
_ROLLBACKS = ("", "transaction", "restore")
_ALIAS_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SHORT = 255
"""The model's CharField length for the host, a plan label and a backup name."""


@dataclass(frozen=True)
class JournalEntry:
    """One migration run as the journal keeps it (times are ISO 8601 in UTC)."""

    database: str
    status: str
    rollback: str
    plan: list[str]
    backup_name: str
    error: str
    host: str
    pid: int | None
    started: str
    finished: str | None
    duration: float

    @property
    def key(self) -> tuple[str, str, str, str, int | None]:
        """What tells two runs apart: a process starts one run at a time."""
        return (self.database, self.started, self.status, self.host, self.pid)


def journal_path(alias: str) -> Path:
    return backup_dir_for(alias) / JOURNAL_FILE


def utc_iso(value: datetime) -> str:
    """A MigrationRun time (aware, or naive local time without USE_TZ) as ISO 8601 in UTC."""
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def entry_for(run: Any) -> JournalEntry:
    """The journal entry of a MigrationRun (saved or not)."""
    return JournalEntry(
        database=run.database,
        status=run.status,
        rollback=run.rollback or "",
        plan=[str(label)[:_SHORT] for label in run.plan][:MAX_PLAN_ITEMS],
        backup_name=run.backup_name or "",
        error=(run.error or "")[:MAX_ERROR_CHARS],
        host=(run.host or "")[:_SHORT],
        pid=run.pid,
        started=utc_iso(run.started),
        finished=utc_iso(run.finished) if run.finished else None,
        duration=float(run.duration or 0.0),
    )


def append_run(run: Any) -> bool:
    """Append ``run`` (a MigrationRun) to its database's journal; False (logged) if it cannot be.

    One write of one line under the folder's manifest lock, then fsync: a crash leaves the line
    whole or cut short, and a cut line is ended before the next one is added (it is then skipped
    as unreadable). Never raises: a run's outcome must not depend on its log.
    """
    entry = entry_for(run)
    data: dict[str, Any] = {"v": FORMAT_VERSION, **asdict(entry)}
    key = get_settings().encryption_key
    if key:
        data["mac"] = mac_of(data, key)
    line = json.dumps(data, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    path = journal_path(entry.database)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _folder_lock(path.parent / MANIFEST_LOCK):
            flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(path, flags, 0o600)
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    raise OSError(f"{path} is not a regular file")
                if info.st_size and _last_byte(fd, info.st_size) != b"\n":
                    line = b"\n" + line  # a line cut by a crash stays on its own
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            if info.st_size == 0:
                fsync_dir(path.parent)  # a new file's name durable too
    except OSError as exc:
        logger.warning("migration run not written to the journal %s: %s", path, exc)
        return False
    return True


def _last_byte(fd: int, size: int) -> bytes:
    return os.pread(fd, 1, size - 1)


def read_journal(path: Path) -> list[JournalEntry]:
    """The valid entries of the journal at ``path``, oldest first; [] when there is none.

    Bad lines (malformed, wrong types, out of bounds, or unauthenticated with a key set) are
    skipped with one warning naming how many and why the first was.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    except OSError as exc:
        logger.warning("the journal %s cannot be read: %s", path, exc)
        return []
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            logger.warning("the journal %s is not a regular file; ignored", path)
            return []
        cut = info.st_size > MAX_JOURNAL_BYTES
        if cut:
            f.seek(info.st_size - MAX_JOURNAL_BYTES)
            logger.warning(
                "the journal %s is larger than %d MiB: only its newest runs are read",
                path,
                MAX_JOURNAL_BYTES >> 20,
            )
        data = f.read(MAX_JOURNAL_BYTES)
    lines = data.split(b"\n")
    if cut:
        lines = lines[1:]  # the first is a tail of a line
    key = get_settings().encryption_key
    entries: list[JournalEntry] = []
    bad: list[str] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        entry, problem = _parse(raw, key)
        if entry is None:
            bad.append(f"line {number}: {problem}")
        else:
            entries.append(entry)
    if bad:
        logger.warning("skipped %d bad line(s) of the journal %s (%s)", len(bad), path, bad[0])
    return entries


def _parse(raw: bytes, key: str | None) -> tuple[JournalEntry | None, str]:
    """An entry from one line, or None and why not."""
    if len(raw) > MAX_LINE_BYTES:
        return None, "too long"
    try:
        data = json.loads(raw)
    except ValueError:
        return None, "not JSON (cut short by a crash?)"
    if not isinstance(data, dict):
        return None, "not a JSON object"
    if data.get("v") != FORMAT_VERSION:
        return None, f"unknown format {str(data.get('v'))[:20]!r}"
    if key:
        mac = data.pop("mac", None)
        if not isinstance(mac, str) or not hmac.compare_digest(mac, mac_of(data, key)):
            return None, "not authenticated by SAFEMIGRATE_ENCRYPTION_KEY"
    problem = _problem(data)
    if problem:
        return None, problem
    fields = {name: data[name] for name in JournalEntry.__dataclass_fields__}
    for when in ("started", "finished"):  # one spelling, so a run is found by its start time
        if fields[when] is not None:
            fields[when] = utc_iso(datetime.fromisoformat(fields[when]))
    return JournalEntry(**fields), ""


def _problem(data: dict[str, Any]) -> str | None:
    """Why ``data`` is not a valid entry, or None: every field typed and bounded."""
    missing = [name for name in JournalEntry.__dataclass_fields__ if name not in data]
    if missing:
        return f"no {missing[0]!r}"
    if not isinstance(data["database"], str) or not _ALIAS_RE.fullmatch(data["database"]):
        return "'database' is not a database alias"
    if data["status"] not in _STATUSES:
        return "'status' is not a run status"
    if data["rollback"] not in _ROLLBACKS:
        return "'rollback' is not a rollback kind"
    plan = data["plan"]
    if (
        not isinstance(plan, list)
        or len(plan) > MAX_PLAN_ITEMS
        or not all(isinstance(label, str) and len(label) <= _SHORT for label in plan)
    ):
        return "'plan' is not a list of migration labels"
    name = data["backup_name"]
    if not isinstance(name, str) or (name and not is_backup_name(name)):
        return "'backup_name' is not a safemigrate backup name"
    for text, limit in (("error", MAX_ERROR_CHARS), ("host", _SHORT)):
        if not isinstance(data[text], str) or len(data[text]) > limit:
            return f"{text!r} is not a string of at most {limit} characters"
    pid = data["pid"]
    if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**31):
        return "'pid' is not a process id"
    for when in ("started", "finished"):
        if not (when == "finished" and data[when] is None) and not _is_utc_iso(data[when]):
            return f"{when!r} is not an ISO 8601 time with a time zone"
    duration = data["duration"]
    if not isinstance(duration, int | float) or isinstance(duration, bool) or not 0 <= duration < 1e9:
        return "'duration' is not a number of seconds"
    return None


def _is_utc_iso(value: object) -> bool:
    if not isinstance(value, str) or len(value) > 40:
        return False
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False
