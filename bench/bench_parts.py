"""Where a backup's CPU goes: each step of ``backup`` timed alone, in one process, on a copy.

The steps of ``safemigrate.backup`` one after another (no overlap, so each figure is its own):
the online backup API copy, ``quick_check`` without its CHECK pass and the row counts (the
check), zstd level 1 on two threads with sha256 and fsync (the pipeline's own work), and the
read-back (sha256 of the stored file, a full zstd decode), then unlinking the plaintext copy.
CPU time (user + sys of the process, threads included) beside wall time; print the load with it.

Run: ``.venv/bin/python bench/bench_parts.py /tmp/bench/db-200mb.sqlite3`` (files go beside it).
"""

from __future__ import annotations

import hashlib
import os
import resource
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, cast

import zstandard

CHUNK = 1 << 20


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def part(name: str, fn: Callable[[], Any]) -> None:
    c, w = cpu(), time.perf_counter()
    fn()
    print(f"| {name} | {cpu() - c:.2f} s | {time.perf_counter() - w:.2f} s |", flush=True)


def main() -> None:
    db = Path(sys.argv[1]).resolve()
    snap, out = db.with_name(db.name + ".parts-snapshot"), db.with_name(db.name + ".parts.zst")
    print(f"{db} ({db.stat().st_size / 2**20:,.0f} MB), load average {os.getloadavg()[0]:.2f}")
    print("| step | CPU | wall |\n|---|---|---|")

    def copy() -> None:
        src, dst = sqlite3.connect(db), sqlite3.connect(snap)
        dst.execute("PRAGMA synchronous=OFF")
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
        dst.close()
        src.close()

    def quick_check() -> None:
        conn = sqlite3.connect(snap)
        conn.execute("PRAGMA ignore_check_constraints=ON")
        conn.execute("PRAGMA quick_check").fetchall()
        conn.close()

    def counts() -> None:
        conn = sqlite3.connect(snap)
        sql = "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
        for (table,) in conn.execute(sql).fetchall():
            conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()  # noqa: S608
        conn.close()

    def compress() -> None:
        digest = hashlib.sha256()
        with snap.open("rb") as fin, out.open("wb") as f:

            class Sink:
                def write(self, data: bytes) -> int:
                    digest.update(data)
                    return f.write(data)

            cctx = zstandard.ZstdCompressor(level=1, threads=2, write_checksum=True)
            writer = cctx.stream_writer(cast("IO[bytes]", Sink()), closefd=False)
            while chunk := fin.read(CHUNK):
                writer.write(chunk)
            writer.flush(zstandard.FLUSH_FRAME)
            f.flush()
            os.fsync(f.fileno())

    def sha256() -> None:
        with out.open("rb") as f:
            hashlib.file_digest(f, "sha256")

    def decode() -> None:
        with out.open("rb") as f:
            reader = zstandard.ZstdDecompressor().stream_reader(f, read_size=CHUNK)
            while reader.read(CHUNK):
                pass

    try:
        part("backup API copy (plaintext snapshot)", copy)
        part("check: quick_check without the CHECK pass", quick_check)
        part("check: row counts of every table", counts)
        part("zstd -1 on 2 threads + sha256 + fsync", compress)
        part("read-back: sha256 of the stored file", sha256)
        part("read-back: full zstd decode", decode)
        part("unlink the plaintext snapshot", snap.unlink)
    finally:
        snap.unlink(missing_ok=True)
        out.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
