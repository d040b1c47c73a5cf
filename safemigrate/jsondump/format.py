"""What a dump file is: Django's JSON array, one object a line, describing itself (header and end
records inside the file) and described by a sidecar ``<dump>.dump-manifest.json``."""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import django
import orjson

import safemigrate
from safemigrate.codec import BackupReader, detect_format, file_suffix, mac_of
from safemigrate.conf import get_settings
from safemigrate.constants import CHUNK, DUMP_MANIFEST_SUFFIX, ENCRYPTED_EXTENSION
from safemigrate.exceptions import RestoreError
from safemigrate.manifest import Manifest, clean_reason, manifest_path_for, read_json_file

FORMAT = "safemigrate-json-dump"
FORMAT_VERSION = 2
"""2: the dump describes itself (a header and an end record inside the file, see ``carrier``)."""
CARRIER_KEY = "safemigrate_dump"
MAX_LINE = 64 << 20
"""Bytes one line of a dump may hold: a longer row is refused on export, a longer line on import
(a damaged or crafted dump must not grow in memory without bound)."""
HEAD, SEP, TAIL, EMPTY_TAIL = b"[\n", b",\n", b"\n]\n", b"]\n"


@dataclass(frozen=True)
class JsonDumpResult:
    """A written dump: its file, checksums, rows per model and the migrations it was made at."""

    path: Path
    manifest_path: Path
    sha256: str
    size: int
    raw_size: int
    raw_sha256: str
    compression: str
    encryption: str | None
    created: str
    database: str
    vendor: str
    models: dict[str, int]
    migrations: dict[str, list[str]]
    duration: float
    backup: Manifest | None = None
    """The backup's manifest, updated with ``json_dump``, when the dump was made for a backup."""

    @property
    def rows(self) -> int:
        return sum(self.models.values())

    def as_json(self) -> dict[str, Any]:
        """What the backup manifest's ``json_dump`` field and ``backup --format json`` hold."""
        return {
            "file": self.path.name,
            "path": str(self.path),
            "sha256": self.sha256,
            "size": self.size,
            "raw_size": self.raw_size,
            "compression": self.compression,
            "encryption": self.encryption,
            "created": self.created,
            "rows": self.rows,
            "models": self.models,
            "migrations": self.migrations,
            "duration": round(self.duration, 3),
        }


def carrier(model: str, info: dict[str, Any]) -> bytes:
    """A self-description record that ``loaddata`` reads as a plain fixture object.

    It is the content type of one of safemigrate's own models (which ``migrate`` creates in every
    database that has safemigrate, so ``loaddata`` merges it by natural key and changes nothing),
    with the description in an extra top-level key that Django's deserializer ignores. Our import
    reads the description and loads no row from it.
    """
    obj = {
        "model": "contenttypes.contenttype",
        "fields": {"app_label": "safemigrate", "model": model},
        CARRIER_KEY: info,
    }
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def header_record(*, alias: str, labels: list[str], migrations: dict[str, list[str]]) -> bytes:
    """The first object of a dump: what it holds and the code that wrote it."""
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "database": alias,
        "app_version": safemigrate.__version__,
        "django_version": django.get_version(),
        "models": labels,
        "migrations": migrations,
    }
    return carrier("backup", {"part": "header", **header})


def end_record(*, rows: dict[str, int], sha256: str) -> bytes:
    """The last object of a dump: its rows, and the hash of every decoded byte before it."""
    return carrier("migrationrun", {"part": "end", "rows": rows, "sha256": sha256})


def dump_manifest_path(path: Path) -> Path:
    """``<dump file>.dump-manifest.json``, the sidecar that ``load_json_dump`` checks."""
    return path.with_name(path.name + DUMP_MANIFEST_SUFFIX)


def sidecar_bytes(result: JsonDumpResult, database_name: str, backup: Manifest | None, reason: str) -> bytes:
    data = {
        **result.as_json(),
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "raw_sha256": result.raw_sha256,
        "database": result.database,
        "database_name": database_name,
        "vendor": result.vendor,
        "reason": backup.reason if backup else clean_reason(reason),
        "backup": backup.name if backup else None,
        "app_version": safemigrate.__version__,
        "django_version": django.get_version(),
    }
    data.pop("path")
    key = get_settings().encryption_key
    if key:  # authenticated like a backup manifest: no swapped, edited or renamed dump is loaded
        data["mac"] = mac_of(data, key)
    return json.dumps(data, indent=2, sort_keys=True).encode()


@dataclass(frozen=True)
class DumpInfo:
    """What the import checks: the sidecar manifest's fields, or the dump's own header."""

    path: Path
    sha256: str | None
    """Of the stored file; None when only the header inside the file is known."""
    size: int | None
    compression: str
    encryption: str | None
    models: dict[str, int]
    """Rows per model; the counts are -1 when only the header is known (the end record has them)."""
    migrations: dict[str, list[str]]


def read_dump_manifest(path: Path) -> DumpInfo:
    """What to check the dump at ``path`` against: its sidecar manifest, else its own header.

    A clear RestoreError when neither is there (a dump made before format 2 copied without its
    sidecar) or the file is no dump at all.
    """
    sidecar = dump_manifest_path(path)
    if not path.is_file():
        raise RestoreError(f"no JSON dump at {path}")
    try:
        data = read_json_file(sidecar)
    except FileNotFoundError:
        return _read_dump_header(path)
    except (OSError, ValueError) as exc:
        raise RestoreError(f"{sidecar} is not a safemigrate dump manifest ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RestoreError(f"{sidecar} is not a safemigrate JSON dump manifest")
    _check_dump_authenticated(path, data)
    if data.get("version", 0) > FORMAT_VERSION:
        raise RestoreError(
            f"{path.name} is dump format {data['version']}, newer than this code reads "
            f"({FORMAT_VERSION}); load it with the safemigrate version that made it"
        )
    try:
        return DumpInfo(
            path=path,
            sha256=str(data["sha256"]),
            size=int(data["size"]),
            compression=str(data["compression"]),
            encryption=data.get("encryption"),
            models={str(k): int(v) for k, v in data["models"].items()},
            migrations={str(k): list(v) for k, v in data.get("migrations", {}).items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RestoreError(f"{sidecar} is not a complete dump manifest (missing {exc})") from exc


def _dump_compression(path: Path) -> tuple[str, bool]:
    """(compression, encrypted) of a dump from its name (``….json.zst.enc``), else its first bytes."""
    name = path.name.lower()
    encrypted = name.endswith(ENCRYPTED_EXTENSION)
    stem = name.removesuffix(ENCRYPTED_EXTENSION)
    for compression in ("zstd", "gzip", "none"):
        if stem.endswith("json" + file_suffix(compression, False)):
            return compression, encrypted
    compression, encrypted = detect_format(path)
    if encrypted:
        raise RestoreError(
            f"{path.name}: cannot tell how this encrypted dump is compressed from its name; give it "
            "its original name (….json.zst.enc, ….json.gz.enc or ….json.enc)"
        )
    return compression, False


def _read_dump_header(path: Path) -> DumpInfo:
    """The header record inside a format-2 dump (the dump was copied without its sidecar)."""
    if manifest_path_for(path).is_file() or ".json" not in path.name.lower():
        raise RestoreError(
            f"{path.name} is a database backup, not a JSON dump: restore it with "
            f"`manage.py restore --file {path}` (or by its name); restore --json takes a ….json… dump"
        )
    compression, encrypted = _dump_compression(path)
    if get_settings().encryption_key and not encrypted:
        # Without the authenticated sidecar only AES-GCM vouches for the content.
        raise RestoreError(
            f"{path.name} is not encrypted but SAFEMIGRATE_ENCRYPTION_KEY is set, and it has no "
            "authenticated dump manifest beside it; it was not loaded and the database was not changed"
        )
    with path.open("rb") as f:
        reader = BackupReader(
            f, compression=compression, encrypted=encrypted, key=get_settings().encryption_key, name=path.name
        )
        head = b""
        while head.count(b"\n") < 2 and len(head) < MAX_LINE:
            chunk = reader.read(64 * 1024)
            if not chunk:
                break
            head += chunk
    lines = head.split(b"\n")
    header: Any = None
    if len(lines) > 2 and lines[0].strip() == b"[":
        try:
            header = orjson.loads(lines[1].rstrip(b","))
        except orjson.JSONDecodeError:
            header = None
    info = header.get(CARRIER_KEY) if isinstance(header, dict) else None
    if not isinstance(info, dict) or info.get("part") != "header" or info.get("format") != FORMAT:
        raise RestoreError(
            f"{path.name} has no dump manifest beside it ({dump_manifest_path(path).name}) and does "
            "not describe itself (made before safemigrate wrote format 2, or not a safemigrate dump); "
            "copy the manifest with the dump"
        )
    if not isinstance(info.get("version"), int) or info["version"] > FORMAT_VERSION:
        raise RestoreError(
            f"{path.name} is dump format {info.get('version')!r}, newer than this code reads "
            f"({FORMAT_VERSION}); load it with the safemigrate version that made it"
        )
    labels, migrations = info.get("models"), info.get("migrations")
    if not (
        isinstance(labels, list)
        and all(isinstance(label, str) for label in labels)
        and isinstance(migrations, dict)
        and all(isinstance(k, str) and isinstance(v, list) for k, v in migrations.items())
        and all(isinstance(n, str) for v in migrations.values() for n in v)
    ):
        raise RestoreError(f"{path.name}: its header is damaged (models or migrations); use another dump")
    return DumpInfo(
        path=path,
        sha256=None,
        size=None,
        compression=compression,
        encryption="aes-256-gcm" if encrypted else None,
        models=dict.fromkeys(labels, -1),
        migrations={k: list(v) for k, v in migrations.items()},
    )


def _check_dump_authenticated(path: Path, data: dict[str, Any]) -> None:
    """With SAFEMIGRATE_ENCRYPTION_KEY set: only an encrypted dump whose sidecar carries our MAC
    and names this very file (see manifest.authentication_problem)."""
    key = get_settings().encryption_key
    if not key:
        return
    fields = {k: v for k, v in data.items() if k != "mac"}
    if not data.get("encryption"):
        problem = "is not encrypted but SAFEMIGRATE_ENCRYPTION_KEY is set"
    elif not isinstance(data.get("mac"), str) or not hmac.compare_digest(data["mac"], mac_of(fields, key)):
        problem = "has a dump manifest that fails its authentication (changed, or made with another key)"
    elif data.get("file") != path.name:
        problem = f"is named {path.name} but its dump manifest describes {data.get('file')}"
    else:
        return
    raise RestoreError(f"{path.name} {problem}; it was not loaded and the database was not changed")


def read_lines(reader: BackupReader, *, name: str) -> Iterator[bytes]:
    """The decoded dump, line by line, reading a chunk at a time.

    A line's pieces are kept apart until its end is read (never re-copied per chunk), and a line
    longer than MAX_LINE is refused: a damaged or crafted dump cannot fill the memory.
    """
    pieces: list[bytes] = []
    pending = 0
    number = 1
    while chunk := reader.read(CHUNK):
        parts = chunk.split(b"\n")
        if len(parts) > 1:
            pieces.append(parts[0])
            yield b"".join(pieces)
            yield from parts[1:-1]
            number += len(parts) - 1
            pieces, pending = [parts[-1]], len(parts[-1])
        else:
            pieces.append(chunk)
            pending += len(chunk)
        if pending > MAX_LINE:
            raise RestoreError(
                f"line {number} of {name} is longer than {MAX_LINE:,} bytes: the dump is damaged or "
                "not one of ours; the database was not changed. Use another dump"
            )
    rest = b"".join(pieces)
    if rest:
        yield rest
