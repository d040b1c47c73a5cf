"""Benchmark: JSON export/import (backup --json-only, restore --json) vs dumpdata/loaddata.

Builds SQLite databases of generated workout sets (``seed_demo``), then in one run, A B A B:

- export: ``backup --json-only`` (zstd, checksummed, read back) vs ``dumpdata`` of the same models
  with the same natural keys, to a plain .json file;
- import into a freshly migrated database: ``restore --json`` vs ``loaddata`` of the dumpdata file
  (loaddata of a million rows takes minutes: --loaddata-runs, default 1);
- our export and import again at a second, smaller size, to show that memory does not grow.

Every step is a real ``manage.py`` process; time is wall clock, peak RSS is the process's own
(``os.wait4``). The page cache is warm (each database was just written). Run:

    .venv/bin/python bench/bench_json.py                  # 1,000,000 and 250,000 sets, 3 runs
    .venv/bin/python bench/bench_json.py --sets 100000 --small-sets 25000 --reps 2   # a quick look
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DUMPDATA_ARGS = ["--natural-foreign", "--natural-primary", "-e", "django_q", "-e", "safemigrate"]


def env_for(db: Path, backups: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEMIGRATE_")}
    env.update(
        DJANGO_SETTINGS_MODULE="fitnessdb.settings",
        DATABASE_URL=f"sqlite:///{db}",
        SAFEMIGRATE_BACKUP_DIR=str(backups),
        SECRET_KEY="bench",  # noqa: S106 - a throwaway benchmark database
        DEBUG="0",
        PYTHONPATH=str(ROOT),
    )
    return env


def run_child(*args: str, env: dict[str, str]) -> tuple[float, int, str]:
    """(seconds, peak RSS in MB, stdout) of one manage.py process, reaped with wait4 so the RSS
    is this child's own; exits on failure."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), *args],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=err,
            text=True,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            sys.exit(f"manage.py {' '.join(args)} failed:\n{err.read()}")
        return elapsed, usage.ru_maxrss // 1024, out.read()


def build(work: Path, sets: int) -> tuple[Path, Path]:
    """(database with ``sets`` generated sets, an empty migrated database) in ``work``."""
    work.mkdir(parents=True, exist_ok=True)
    db, empty = work / "source.sqlite3", work / "empty.sqlite3"
    env = env_for(db, work / "backups")
    print(f"building {db} with {sets:,} sets …", flush=True)
    run_child("migrate", "--no-backup", "-v0", env=env)
    run_child("seed_demo", "--workouts", str(sets // 10), "--sets-per-workout", "10", env=env)
    run_child("migrate", "--no-backup", "-v0", env=env_for(empty, work / "backups"))
    return db, empty


def fresh_copy(empty: Path, target: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(empty, target)
    return target


def our_export(db: Path, work: Path) -> tuple[float, int, Path]:
    backups = work / "ours"
    shutil.rmtree(backups, ignore_errors=True)
    seconds, rss, _ = run_child("backup", "--json-only", "-v0", env=env_for(db, backups))
    (dump,) = backups.glob("*.json.zst")
    return seconds, rss, dump


def dumpdata(db: Path, work: Path) -> tuple[float, int, Path]:
    out = work / "dumpdata.json"
    seconds, rss, _ = run_child("dumpdata", *DUMPDATA_ARGS, "-o", str(out), env=env_for(db, work / "unused"))
    return seconds, rss, out


def our_import(dump: Path, empty: Path, work: Path) -> tuple[float, int]:
    target = fresh_copy(empty, work / "target.sqlite3")
    env = env_for(target, work / "import-backups")
    seconds, rss, out = run_child("restore", "--json", str(dump), "--noinput", "-v0", env=env)
    assert "Loaded " in out, out
    return seconds, rss


def loaddata(fixture: Path, empty: Path, work: Path) -> tuple[float, int]:
    target = fresh_copy(empty, work / "target.sqlite3")
    seconds, rss, _ = run_child("loaddata", str(fixture), "-v0", env=env_for(target, work / "unused"))
    return seconds, rss


def summary(name: str, runs: list[tuple[float, int]]) -> tuple[float, int]:
    times = [t for t, _ in runs]
    median, peak = statistics.median(times), max(r for _, r in runs)
    shown = ", ".join(f"{t:.2f}" for t in times)
    print(f"  {name:<34} median {median:7.2f} s   peak RSS {peak:4d} MB   runs: {shown}")
    return median, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sets", type=int, default=1_000_000)
    parser.add_argument("--small-sets", type=int, default=250_000)
    parser.add_argument("--reps", type=int, default=3, help="runs of each of ours and dumpdata")
    parser.add_argument("--loaddata-runs", type=int, default=1)
    parser.add_argument("--workdir", type=Path, help="where the databases go (default: a temp dir)")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_json-"))
    try:
        big_db, big_empty = build(work / "big", args.sets)
        small_db, small_empty = build(work / "small", args.small_sets)
        results: dict[str, list[tuple[float, int]]] = {}

        def note(key: str, seconds: float, rss: int) -> None:
            results.setdefault(key, []).append((seconds, rss))
            print(f"    {key:<28} {seconds:7.2f} s  {rss:4d} MB", flush=True)

        print(f"export, {args.sets:,} sets: ours and dumpdata in turn", flush=True)
        dump = fixture = None
        for _ in range(args.reps):
            seconds, rss, dump = our_export(big_db, work / "big")
            note("export ours", seconds, rss)
            seconds, rss, fixture = dumpdata(big_db, work / "big")
            note("export dumpdata", seconds, rss)
        assert dump is not None
        assert fixture is not None
        print(f"import, {args.sets:,} sets: ours and loaddata in turn", flush=True)
        for rep in range(max(args.reps, args.loaddata_runs)):
            if rep < args.reps:
                note("import ours", *our_import(dump, big_empty, work / "big"))
            if rep < args.loaddata_runs:
                note("import loaddata", *loaddata(fixture, big_empty, work / "big"))
        print(f"export and import, {args.small_sets:,} sets: ours (memory against size)")
        for _ in range(args.reps):
            seconds, rss, small_dump = our_export(small_db, work / "small")
            note("export ours (small)", seconds, rss)
            note("import ours (small)", *our_import(small_dump, small_empty, work / "small"))

        print(f"\nResults (warm page cache; median of runs; {os.cpu_count()} CPUs)")
        zstd_mb, json_mb = dump.stat().st_size / 1e6, fixture.stat().st_size / 1e6
        size = f"{zstd_mb:.1f} MB zstd, {json_mb:.1f} MB json"
        print(f"  dump of {args.sets:,} sets: {size}")
        ours_out = summary(f"export ours ({args.sets:,})", results["export ours"])
        theirs_out = summary(f"export dumpdata ({args.sets:,})", results["export dumpdata"])
        ours_in = summary(f"import ours ({args.sets:,})", results["import ours"])
        theirs_in = summary(f"import loaddata ({args.sets:,})", results["import loaddata"])
        small_out = summary(f"export ours ({args.small_sets:,})", results["export ours (small)"])
        small_in = summary(f"import ours ({args.small_sets:,})", results["import ours (small)"])
        print(f"\n  export: {theirs_out[0] / ours_out[0]:.1f}x faster than dumpdata (target >= 3x)")
        print(f"  import: {theirs_in[0] / ours_in[0]:.1f}x faster than loaddata (target >= 5x)")
        print(
            f"  peak RSS ours: export {small_out[1]} -> {ours_out[1]} MB, import {small_in[1]} -> "
            f"{ours_in[1]} MB for {args.small_sets:,} -> {args.sets:,} sets (target < 150 MB)"
        )
        if args.loaddata_runs < 3:
            print(f"  (loaddata ran {args.loaddata_runs} time(s): a million rows take minutes)")
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
