"""Reading a pg_dump custom-format archive's table of contents before pg_restore runs it.

A backup file may be crafted: every entry's SQL (``defn``) and each table's ``COPY`` statement run
as the restoring role. The table of contents sits at the start of the archive, so it is parsed
from the stream (the bytes are kept and replayed to pg_restore) and an archive with an entry that
reaches outside the scratch database (roles, other databases, the server's files or programs) is
refused before anything is loaded. A text check cannot see through dynamic SQL built at run time:
a scratch role (SAFEMIGRATE_SCRATCH_USER) is what confines that.

The layout is pg_dump's ``pg_backup_archiver.c`` (ReadHead, ReadToc), archive versions 1.12-1.16.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

MAGIC = b"PGDMP"
MAX_TOC_BYTES = 256 * 2**20
_KNOWN = ((1, 12), (1, 16))


class ArchiveRefused(Exception):
    """The archive is not one pg_restore may load into a scratch database (the message says why)."""


@dataclass(frozen=True)
class TocEntry:
    desc: str
    tag: str
    namespace: str
    defn: str
    copy: str

    @property
    def label(self) -> str:
        name = f"{self.namespace}.{self.tag}" if self.namespace else self.tag
        return f"{self.desc} {name}"[:120]


# Entry types that live outside the database or act on the server (an extension runs its own
# install script; one the live database already has is allowed).
_REFUSED_TYPES = {
    "EVENT TRIGGER",
    "FOREIGN DATA WRAPPER",
    "SERVER",
    "USER MAPPING",
    "SUBSCRIPTION",
    "PROCEDURAL LANGUAGE",
    "ROLE",
}
# Extensions that reach other databases, servers, files or programs. Any other runs only the
# server's own install script; these are allowed only where the live database has them.
_REACHING_EXTENSIONS = {
    "adminpack",
    "dblink",
    "file_fdw",
    "http",
    "log_fdw",
    "multicorn",
    "mysql_fdw",
    "oracle_fdw",
    "pg_background",
    "pg_cron",
    "plperlu",
    "plpython3u",
    "plpythonu",
    "plsh",
    "pltclu",
    "postgres_fdw",
    "tds_fdw",
}
_STATEMENTS = [
    (re.compile(p, re.IGNORECASE), what)
    for p, what in (
        (r"\b(?:ALTER|CREATE|DROP)\s+(?:ROLE|USER|GROUP)\b", "changes a role"),
        (r"\bREASSIGN\s+OWNED\b", "changes a role"),
        (r"\b(?:SET|RESET)\s+(?:SESSION\s+|LOCAL\s+)?(?:ROLE|SESSION\s+AUTHORIZATION)\b", "switches role"),
        (r"\bset_config\s*\(\s*'(?:role|session_authorization)'", "switches role"),
        (r"\bGRANT\b(?:(?!\bON\b)[^;])*\bTO\b", "grants a role"),
        (
            r"\b(?:ALTER|CREATE|DROP)\s+(?:DATABASE|TABLESPACE|SUBSCRIPTION|SERVER)\b",
            "acts on another database",
        ),
        (r"\bALTER\s+SYSTEM\b", "changes the server's configuration"),
        (
            r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:EVENT\s+TRIGGER|FOREIGN\s+DATA\s+WRAPPER|"
            r"(?:TRUSTED\s+)?(?:PROCEDURAL\s+)?LANGUAGE|EXTENSION)\b",
            "installs server code",
        ),
        (r"\bLANGUAGE\s+'?(?:c|internal|plpython3?u|plperlu|pltclu)'?(?![\w$])", "runs untrusted code"),
        (r"\bPROGRAM\s+'", "runs a program on the database server"),
        (r"\bCOPY\b[^;]*\b(?:TO|FROM)\s+(?:E?')", "reads or writes a server file"),
        (r"\bLOAD\s+'", "loads a server library"),
        (
            r"\b(?:dblink\w*|pg_read_file|pg_read_binary_file|pg_ls_\w+|pg_stat_file|lo_import|"
            r"lo_export|pg_file_write|pg_terminate_backend|pg_cancel_backend|pg_reload_conf|"
            r"pg_rotate_logfile|pg_signal_backend)\s*\(",
            "reaches outside the database",
        ),
    )
]
_COMMENTS = re.compile(r"/\*.*?\*/", re.DOTALL)
_QUOTED_IDENT = re.compile(r'"(?:[^"]|"")*"')
_HONEST_EXTENSION = re.compile(r'CREATE EXTENSION IF NOT EXISTS [\w"]+ WITH SCHEMA [\w"]+;\s*')
_HONEST_COPY = re.compile(r"COPY [^;']+ FROM stdin;\s*", re.IGNORECASE)


class _Prefix:
    """Reads the stream in chunks, keeping every byte read so it can be replayed."""

    def __init__(self, read: Callable[[int], bytes], chunk: int) -> None:
        self._read, self._chunk = read, chunk
        self.data = bytearray()
        self.pos = 0

    def take(self, n: int) -> bytes:
        while len(self.data) - self.pos < n:
            if len(self.data) > MAX_TOC_BYTES:
                raise ArchiveRefused(f"its table of contents is larger than {MAX_TOC_BYTES >> 20} MiB")
            more = self._read(self._chunk)
            if not more:
                raise ArchiveRefused("it ends inside its table of contents (truncated)")
            self.data += more
        piece = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return piece


class _Toc:
    def __init__(self, prefix: _Prefix) -> None:
        self.p = prefix
        self.int_size = 4
        self.off_size = 8

    def byte(self) -> int:
        return self.p.take(1)[0]

    def int(self) -> int:
        sign = self.byte()
        value = int.from_bytes(self.p.take(self.int_size), "little")
        return -value if sign else value

    def str(self) -> str | None:
        length = self.int()
        if length < 0:
            return None
        if length > MAX_TOC_BYTES:
            raise ArchiveRefused("its table of contents is damaged")
        return self.p.take(length).decode("utf-8", "replace")


def read_toc(read: Callable[[int], bytes], chunk: int) -> tuple[list[TocEntry], bytes]:
    """The entries of a custom-format archive read from ``read``, and every byte read so far."""
    prefix = _Prefix(read, chunk)
    if prefix.take(5) != MAGIC:
        raise ArchiveRefused("it is not a pg_dump custom-format archive")
    toc = _Toc(prefix)
    version = (toc.byte(), toc.byte())
    toc.byte()  # revision
    if not _KNOWN[0] <= version <= _KNOWN[1]:
        raise ArchiveRefused(
            f"its archive format {version[0]}.{version[1]} is not one this safemigrate can check "
            f"({_KNOWN[0][0]}.{_KNOWN[0][1]}-{_KNOWN[1][0]}.{_KNOWN[1][1]}); upgrade safemigrate"
        )
    toc.int_size, toc.off_size = toc.byte(), toc.byte()
    if toc.int_size > 8 or toc.off_size > 8 or toc.byte() != 1:  # 1: custom format
        raise ArchiveRefused("it is not a pg_dump custom-format archive")
    if version >= (1, 15):
        toc.byte()  # compression algorithm
    else:
        toc.int()  # compression level
    for _ in range(7):  # creation time
        toc.int()
    for _ in range(3):  # database name, server and pg_dump versions
        toc.str()
    entries = []
    count = toc.int()
    if not 0 <= count < 10_000_000:
        raise ArchiveRefused("its table of contents is damaged")
    for _ in range(count):
        toc.int()  # dump id
        toc.int()  # has data
        toc.str()  # table oid
        toc.str()  # oid
        tag = toc.str() or ""
        desc = toc.str() or ""
        toc.int()  # section
        defn = toc.str() or ""
        toc.str()  # drop statement (run only with --clean, never used)
        copy = toc.str() or ""
        namespace = toc.str() or ""
        toc.str()  # tablespace
        toc.str()  # table access method
        if version >= (1, 16):
            toc.int()  # relkind
        toc.str()  # owner
        toc.str()  # "with oids" (always false)
        while toc.str() is not None:  # dependencies
            pass
        toc.byte()  # custom format: the data's state, then its offset (always offSize bytes)
        toc.p.take(toc.off_size)
        entries.append(TocEntry(desc=desc, tag=tag, namespace=namespace, defn=defn, copy=copy))
    return entries, bytes(prefix.data)


def _scan(text: str) -> str | None:
    flat = " ".join(_COMMENTS.sub(" ", text).split())
    for pattern, what in _STATEMENTS:
        found = pattern.search(flat)
        if found:
            return f"{what} ({found[0][:40]})"
    return None


def _skipped_by_pg_restore(entry: TocEntry) -> bool:
    """The database's own entries, which pg_restore runs only with --create (never used)."""
    desc = entry.desc.upper()
    if desc in ("DATABASE", "DATABASE PROPERTIES"):
        return True
    return desc in ("COMMENT", "ACL", "SECURITY LABEL") and entry.tag.startswith("DATABASE ")


def refusal(entries: list[TocEntry], *, extensions: set[str]) -> str | None:
    """Why these entries must not be loaded into a scratch database, or None."""
    for entry in entries:
        desc = entry.desc.upper()
        if _skipped_by_pg_restore(entry):
            continue
        if desc == "EXTENSION":
            if entry.tag in _REACHING_EXTENSIONS and entry.tag not in extensions:
                return f"its entry {entry.label} installs an extension that reaches outside the database"
            if not _HONEST_EXTENSION.fullmatch(_QUOTED_IDENT.sub('""', entry.defn)):
                return f"its entry {entry.label} holds more than the extension"
            continue
        if desc in _REFUSED_TYPES:
            return f"its entry {entry.label} acts outside the scratch database"
        problem = _scan(entry.defn)
        if problem:
            return f"its entry {entry.label} {problem}"
        if entry.copy and not _HONEST_COPY.fullmatch(_QUOTED_IDENT.sub('""', entry.copy)):
            return f"its entry {entry.label} loads its rows with an unexpected statement"
    return None


def replay(prefix: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    """The bytes read for the table of contents, then the rest of the stream."""
    if prefix:
        yield prefix
    yield from rest
