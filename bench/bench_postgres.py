"""safemigrate backup/restore of a ~1 GB PostgreSQL database vs bare pg_dump / pg_restore.

Usage (PostgreSQL on 127.0.0.1:5432, user postgres, trust; pg_dump/pg_restore/zstd installed):

    .venv/bin/python bench/bench_postgres.py [--reps 3] [--rows 7500000] [--regenerate] [--drop]

Builds (once, kept for the next run unless --drop) a database ``smbench_pg``: the Django schema plus
a 7.5-million-row workout-set table made with ``generate_series`` (about 1 GB with its indexes).
Then, in ONE run and interleaved (A B C D A B C D ...), each rep times:

- ``backup``: ``create_backup()`` (pg_dump -Fc -Z0 streamed through zstd-1 on two threads, row
  counts from the dump's own snapshot, sha256, fsync, read back and verified, manifest);
- bare ``pg_dump -Fc`` (its default compression: what people type);
- bare ``pg_dump -Fc -Z0`` (no compression: the least work pg_dump can do into a file);
- the minimal pipeline with the same bytes as ours: ``pg_dump -Fc -Z0 | zstd -1 -T2`` + fsync;
- ``restore``: ``restore_backup(safety_backup=False)`` (scratch database, pg_restore, row counts
  against the manifest, rename swap, old database dropped, every table read back);
- bare: ``dropdb; createdb; pg_restore --exit-on-error`` of the -Z0 dump (no decompression), and
  of the plain ``pg_dump -Fc`` dump.

Even reps run each group in reverse order, so neither side always goes first. After each restore
the table is vacuumed (untimed), so every dump in a rep reads the same state.
Prints the medians and the ratios; cache state: warm (the VM reclaims idle page cache quickly,
which is why the runs are interleaved, see docs/benchmarks.md, Method).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DB = "smbench_pg"
PG = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]
GENERATE = """
CREATE TABLE bench_workoutset (
  id bigint PRIMARY KEY, workout_id integer NOT NULL, exercise_id integer NOT NULL,
  set_order smallint NOT NULL, reps smallint NOT NULL, weight numeric(6,2) NOT NULL,
  rpe smallint, notes text NOT NULL, created timestamptz NOT NULL);
INSERT INTO bench_workoutset
  SELECT g, g / 12, g % 300, g % 12, 1 + g % 15, (g % 2000) / 10.0,
         CASE WHEN g % 3 = 0 THEN NULL ELSE 1 + g % 10 END, md5(g::text) || ' set note',
         timestamptz '2020-01-01' + g * interval '7 seconds'
  FROM generate_series(1, {rows}) g;
CREATE INDEX bench_workoutset_workout ON bench_workoutset (workout_id);
VACUUM (FREEZE, ANALYZE) bench_workoutset;
"""


def sh(*args: str, stdout: int | None = subprocess.DEVNULL, feed: str | None = None) -> str:
    done = subprocess.run(
        args,
        check=True,
        input=feed.encode() if feed is not None else None,
        stdout=subprocess.PIPE if stdout is None else stdout,
    )
    return done.stdout.decode().strip() if stdout is None else ""


def psql(sql: str, database: str = DB) -> str:
    """Run SQL statements one by one (so VACUUM works), returning the last output."""
    return sh(
        "psql",
        *PG,
        "-X",
        "-q",
        "-At",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        database,
        stdout=None,
        feed=sql,
    )


def fsync(path: Path) -> None:
    with path.open("rb+") as f:
        os.fsync(f.fileno())


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def prepare(rows: int, regenerate: bool) -> None:
    exists = psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB}'", "postgres") == "1"
    if exists and not regenerate:
        found = psql(
            "SELECT to_regclass('bench_workoutset') IS NOT NULL "
            "AND to_regclass('django_migrations') IS NOT NULL"
        )
        if found == "t" and psql("SELECT count(*) FROM bench_workoutset") == str(rows):
            return
    print(f"generating {DB} ({rows:,} rows)...", flush=True)
    sh("dropdb", *PG, "--if-exists", "--force", DB)
    sh("createdb", *PG, DB)
    from django.core.management import call_command

    call_command("migrate", "--no-backup", verbosity=0)
    psql(GENERATE.format(rows=rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rows", type=int, default=7_500_000)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--drop", action="store_true", help="drop the database afterwards")
    options = parser.parse_args()
    for tool in ("pg_dump", "pg_restore", "psql", "zstd"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found: apt-get install postgresql-client zstd")

    work = Path(tempfile.mkdtemp(prefix="smbench-pg-"))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="fitnessdb.settings",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DB}",
        SAFEMIGRATE_BACKUP_DIR=str(work / "backups"),
        SECRET_KEY="bench-not-a-secret",  # noqa: S106
        DEBUG="1",
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connections

    from safemigrate.backup import create_backup
    from safemigrate.restore import restore_backup

    prepare(options.rows, options.regenerate)
    size = int(psql(f"SELECT pg_database_size('{DB}')"))
    print(
        f"database {DB}: {size / 1e9:.2f} GB, {options.rows:,} rows in the big table; "
        f"{options.reps} interleaved reps; files in {work}",
        flush=True,
    )

    fc, z0, zst = work / "bare.Fc.dump", work / "bare.Z0.dump", work / "bare.Z0.dump.zst"
    times: dict[str, list[float]] = defaultdict(list)
    sizes: dict[str, int] = {}

    latest: dict[str, Any] = {}

    def ours_backup() -> None:
        latest["manifest"] = create_backup(alias="default", reason="bench").manifest
        sizes["safemigrate"] = latest["manifest"].size

    def ours_restore() -> None:
        restore_backup(backup=latest["manifest"], alias="default", safety_backup=False)

    def minimal_pipeline() -> None:
        dump = subprocess.Popen(["pg_dump", *PG, "-Fc", "-Z0", DB], stdout=subprocess.PIPE)
        subprocess.run(["zstd", "-q", "-1", "-T2", "-f", "-o", str(zst)], stdin=dump.stdout, check=True)
        if dump.wait():
            raise RuntimeError("pg_dump failed")
        fsync(zst)

    def bare_restore() -> None:
        connections["default"].close()
        sh("dropdb", *PG, "--force", DB)
        sh("createdb", *PG, DB)
        sh("pg_restore", *PG, "--exit-on-error", "-d", DB, str(z0))

    def bare_restore_fc() -> None:
        connections["default"].close()
        sh("dropdb", *PG, "--force", DB)
        sh("createdb", *PG, DB)
        sh("pg_restore", *PG, "--exit-on-error", "-d", DB, str(fc))

    for rep in range(1, options.reps + 1):
        backups: list[tuple[str, Callable[[], object]]] = [
            ("backup: safemigrate", ours_backup),
            ("backup: pg_dump -Fc", lambda: sh("pg_dump", *PG, "-Fc", "-f", str(fc), DB)),
            ("backup: pg_dump -Fc -Z0", lambda: sh("pg_dump", *PG, "-Fc", "-Z0", "-f", str(z0), DB)),
            ("backup: pg_dump -Fc -Z0 | zstd -1 -T2", minimal_pipeline),
        ]
        restores: list[tuple[str, Callable[[], object]]] = [
            ("restore: safemigrate", ours_restore),
            ("restore: dropdb+createdb+pg_restore (-Z0 dump)", bare_restore),
            ("restore: dropdb+createdb+pg_restore (-Fc dump)", bare_restore_fc),
        ]
        if rep % 2 == 0:  # alternate the order, so neither side always runs first
            backups.reverse()
            restores.reverse()
        for name, step in backups + restores:
            elapsed = timed(step)
            times[name].append(elapsed)
            print(f"rep {rep}  {name:<48} {elapsed:7.2f} s", flush=True)
            if name.startswith("restore"):
                connections["default"].close()
                psql("VACUUM (FREEZE, ANALYZE) bench_workoutset")  # same state for every dump
        for path in (work / "backups").glob("backup-*"):
            if rep < options.reps:
                path.unlink()

    sizes.update(
        {
            "pg_dump -Fc": fc.stat().st_size,
            "pg_dump -Fc -Z0": z0.stat().st_size,
            "-Z0 | zstd": zst.stat().st_size,
        }
    )
    med = {name: statistics.median(values) for name, values in times.items()}
    print("\nmedians (warm cache):")
    for name, value in med.items():
        print(f"  {name:<52} {value:7.2f} s   ({', '.join(f'{v:.2f}' for v in times[name])})")
    print("file sizes: " + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in sizes.items()))
    pairs = [
        ("backup  vs pg_dump -Fc", "backup: safemigrate", "backup: pg_dump -Fc"),
        ("backup  vs pg_dump -Fc -Z0", "backup: safemigrate", "backup: pg_dump -Fc -Z0"),
        (
            "backup  vs pg_dump -Fc -Z0 | zstd -1 -T2",
            "backup: safemigrate",
            "backup: pg_dump -Fc -Z0 | zstd -1 -T2",
        ),
        (
            "restore vs pg_restore of the -Z0 dump",
            "restore: safemigrate",
            "restore: dropdb+createdb+pg_restore (-Z0 dump)",
        ),
        (
            "restore vs pg_restore of the -Fc dump",
            "restore: safemigrate",
            "restore: dropdb+createdb+pg_restore (-Fc dump)",
        ),
    ]
    print("\nratios safemigrate / bare (targets: backup <= 1.05x pg_dump -Fc, restore <= 1.1x)")
    print(f"  {'':<42} {'of medians':>10}  {'median of per-rep ratios':>24}")
    for label, ours, bare in pairs:
        per_rep = statistics.median(a / b for a, b in zip(times[ours], times[bare], strict=True))
        print(f"  {label:<42} {med[ours] / med[bare]:9.2f}x  {per_rep:23.2f}x")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process (Django + safemigrate, streaming 1 GB): {peak:.0f} MB")
    shutil.rmtree(work)
    if options.drop:
        connections["default"].close()
        sh("dropdb", *PG, "--force", DB)


if __name__ == "__main__":
    main()
