"""safemigrate's verified ``backup`` against django-dbbackup's plain ``dbbackup``, side by side.

The same SQLite database (``--size``: 200mb by default, built by bench_sqlite.py's
``seed_demo`` recipe and shared with it), the same settings (``bench/settings_dbbackup.py``: the
project plus dbbackup), each command a ``manage.py`` subprocess, interleaved (A B, B A, ...;
medians of ``--runs``), warm page cache (the database read once before each run):

- ours: ``manage.py backup``: snapshot (online backup API), integrity check, zstd, sha256,
  fsync, read back and decoded in full, manifest, catalogue row;
- dbbackup: ``manage.py dbbackup`` with its defaults (SQLite connector, no compression, no
  checksum, no check).

Printed: wall time, CPU time (user + sys) and peak RSS of each, their ratios, the load average.
Needs the bench extra: ``pip install -e . --group bench`` (django-dbbackup).
Run: ``.venv/bin/python bench/bench_dbbackup.py [--size 200mb] [--runs 5]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from bench_sqlite import MB, ROOT, SIZES, ensure_database, manage, project_env, run, warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="200mb", choices=list(SIZES))
    parser.add_argument("--runs", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench"))  # noqa: S108
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (e.g. `git archive HEAD~1 | tar -x -C DIR`): its `backup` runs in "
        "the same rounds, printed as 'before'",
    )
    args = parser.parse_args()
    try:
        import dbbackup  # noqa: F401
    except ImportError:
        sys.exit("django-dbbackup is not installed: pip install -e . --group bench")
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    db = ensure_database(args.size, SIZES[args.size], workdir, regenerate=False)
    ours_dir, theirs_dir = workdir / "backups-vs-dbbackup", workdir / "dbbackup"
    env = project_env(
        db, ours_dir, DJANGO_SETTINGS_MODULE="settings_dbbackup", BENCH_DBBACKUP_DIR=str(theirs_dir)
    )
    load = os.getloadavg()
    commands = {
        "ours": (manage("backup", "--reason", "bench", "-v0"), ours_dir, env, ROOT),
        "dbbackup": (manage("dbbackup", "--noinput", "-v0"), theirs_dir, env, ROOT),
    }
    if args.baseline:
        base, base_dir = args.baseline.resolve(), workdir / "backups-vs-dbbackup-baseline"
        base_env = project_env(
            db,
            base_dir,
            root=base,
            DJANGO_SETTINGS_MODULE="settings_dbbackup",
            BENCH_DBBACKUP_DIR=str(theirs_dir),
        )
        commands["before"] = (
            manage("backup", "--reason", "bench", "-v0", root=base),
            base_dir,
            base_env,
            base,
        )
    wall: dict[str, list[float]] = {k: [] for k in commands}
    cpu: dict[str, list[float]] = {k: [] for k in commands}
    rss: dict[str, list[float]] = {k: [] for k in commands}
    size: dict[str, int] = {}
    names = list(commands)
    for i in range(args.runs):
        for name in names if i % 2 == 0 else reversed(names):
            command, folder, command_env, cwd = commands[name]
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            warm(db)
            r = run(command, env=command_env, cwd=cwd)
            wall[name].append(r.seconds)
            cpu[name].append(r.cpu)
            rss[name].append(r.max_rss_mb)
            size[name] = sum(p.stat().st_size for p in folder.iterdir() if not p.name.endswith(".json"))
            print(f"  round {i + 1} {name}: {r.seconds:.2f}s, {r.max_rss_mb:.0f} MB", flush=True)
    for _command, folder, _env, _cwd in commands.values():
        shutil.rmtree(folder, ignore_errors=True)
    after = os.getloadavg()
    w = {k: statistics.median(v) for k, v in wall.items()}
    c = {k: statistics.median(v) for k, v in cpu.items()}
    m = {k: max(v) for k, v in rss.items()}
    print(
        f"\n{db.stat().st_size / MB:,.0f} MB SQLite, warm cache, medians of {args.runs} interleaved runs "
        f"(load average before {load[0]:.2f}, after {after[0]:.2f} / {after[1]:.2f} / {after[2]:.2f})"
    )
    print("| command | wall | CPU (user+sys) | peak RSS | file |")
    print("|---|---|---|---|---|")
    labels = {
        "ours": "`backup` (checked, zstd, sha256, read back)",
        "dbbackup": "`dbbackup` (plain copy)",
        "before": "`backup` of --baseline",
    }
    for name in names:
        print(
            f"| {labels[name]} | {w[name]:.2f} s | {c[name]:.2f} s | {m[name]:.0f} MB "
            f"| {size[name] / MB:,.0f} MB |"
        )
    print(
        f"| ours / dbbackup | **{w['ours'] / w['dbbackup']:.2f}×** | {c['ours'] / c['dbbackup']:.2f}× "
        f"| **{m['ours'] / m['dbbackup']:.2f}×** | |"
    )
    if "before" in w:
        print(
            f"| ours / before | **{w['ours'] / w['before']:.2f}×** | {c['ours'] / c['before']:.2f}× "
            f"| {m['ours'] / m['before']:.2f}× | |"
        )
        print(
            f"| before / dbbackup | {w['before'] / w['dbbackup']:.2f}× | {c['before'] / c['dbbackup']:.2f}× "
            f"| {m['before'] / m['dbbackup']:.2f}× | |"
        )


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - started:.0f}s")
