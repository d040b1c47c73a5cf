"""Undoing a failed migration on a big SQLite database: transaction ROLLBACK vs restoring the backup.

Builds (or reuses) a database of ``--size`` MB under ``--workdir``: the test project migrated, a
bulk table of incompressible-ish rows, and ``tests.migrapp`` at 0001 with its 0002 pending. Then,
interleaved (A B A B ..., medians of ``--runs``), ``manage.py migrate`` with 0002 failing half-way
(``MIGRAPP_FAIL=1``):

- transaction: the default, the whole plan in one transaction, undone by ROLLBACK;
- restore: the same plan with a ``RunSQL("VACUUM")`` appended (``MIGRAPP_SQL``), which no
  transaction may hold, so the plan takes the restore path, undone by restoring the backup
  (what every failed migration cost before).

- backup: a plain ``manage.py backup`` of the same database, the yardstick for the whole failed
  ``migrate`` on the transaction path (target: at most 1.3x: pre-check, backup and migrate,
  the pre-check folded into the backup's own check of the live database).

Reported: the undo alone (from the failure to "the database is back", safemigrate's own INFO log
line), and the whole command's wall time (pre-check and verified backup included, the same in
both), with the load average. Run: ``.venv/bin/python bench/bench_rollback.py [--size 1024] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_sqlite import MB, checkpoint, manage, run, warm

ROOT = Path(__file__).resolve().parents[1]
UNDID = re.compile(r"undid the failed migration on \S+ in ([0-9.]+)s \((transaction|restore)\)")


def env_for(db: Path, backups: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAFEMIGRATE_", "MIGRAPP_"))}
    env.update(
        DATABASE_URL=f"sqlite:///{db}",
        SAFEMIGRATE_BACKUP_DIR=str(backups),
        SAFEMIGRATE_LOG_LEVEL="INFO",
        SECRET_KEY="bench",  # noqa: S106
        DEBUG="1",
        DJANGO_SETTINGS_MODULE="tests.settings",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


def ensure_database(workdir: Path, size_mb: int) -> Path:
    db = workdir / f"rollback-{size_mb}mb.sqlite3"
    marker = db.with_name(db.name + ".ready")
    if marker.exists():
        return db
    for suffix in ("", "-wal", "-shm", ".safemigrate-lock"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    env = env_for(db, workdir / "backups")
    run(manage("migrate", "--no-backup", "-v0"), env=env)
    run(manage("migrate", "migrapp", "0001", "--no-backup", "-v0"), env=env)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE bench_bulk (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
    rows = size_mb * MB // 250
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
        "INSERT INTO bench_bulk (payload) SELECT hex(randomblob(100)) FROM n",
        [rows],
    )
    conn.executemany(
        "INSERT INTO migrapp_item (name, qty) VALUES (?, ?)", [(f"item{n}", n) for n in range(3)]
    )
    conn.commit()
    conn.close()
    checkpoint(db)
    marker.write_text(str(db.stat().st_size))
    return db


def timed(args: list[str], env: dict[str, str]) -> tuple[float, str, float]:
    """Wall time, output (stdout and stderr, where safemigrate logs) and CPU time of one run.

    CPU time (user + sys of the child, ``os.wait4``) hardly moves with the machine's load.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(
        args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )  # noqa: S603
    output = proc.stdout.read() if proc.stdout else ""
    _, _status, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0  # reaped above
    return time.perf_counter() - started, output, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="database size in MB (default 1024)")
    parser.add_argument("--runs", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-rollback"))  # noqa: S108
    parser.add_argument("--skip-restore", action="store_true", help="leave out the restore path")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    db = ensure_database(args.workdir, args.size)
    backups = args.workdir / "backups"
    print(f"database {db} ({db.stat().st_size / MB:,.0f} MB)", flush=True)
    load = os.getloadavg()
    undo: dict[str, list[float]] = {"transaction": [], "restore": []}
    total: dict[str, list[float]] = {"transaction": [], "restore": [], "backup": []}
    cpu: dict[str, list[float]] = {"transaction": [], "restore": [], "backup": []}
    kinds = ("transaction", "backup") if args.skip_restore else ("transaction", "backup", "restore")
    for round_ in range(args.runs):
        order = kinds if round_ % 2 == 0 else tuple(reversed(kinds))
        for kind in order:
            shutil.rmtree(backups, ignore_errors=True)
            if kind == "backup":
                warm(db)
                seconds, output, used = timed(manage("backup", "-v0"), env_for(db, backups))
                if "Traceback" in output or not any(backups.glob("backup-*")):
                    sys.exit(f"backup failed:\n{output}")
                total[kind].append(seconds)
                cpu[kind].append(used)
                print(f"  round {round_ + 1} backup: {seconds:.2f}s, CPU {used:.2f}s", flush=True)
                continue
            extra = {"MIGRAPP_FAIL": "1"} | ({"MIGRAPP_SQL": "VACUUM"} if kind == "restore" else {})
            warm(db)
            env = env_for(db, backups, **extra)
            seconds, output, used = timed(manage("migrate", "-v0"), env)
            found = UNDID.search(output)
            if found is None or found[2] != kind:
                sys.exit(f"{kind}: no undo line in the output:\n{output}")
            undo[kind].append(float(found[1]))
            total[kind].append(seconds)
            cpu[kind].append(used)
            print(
                f"  round {round_ + 1} {kind}: undo {found[1]}s, migrate {seconds:.2f}s, CPU {used:.2f}s",
                flush=True,
            )
    print(f"\nUndoing a failed migration, {db.stat().st_size / MB:,.0f} MB SQLite, medians of {args.runs}")
    after = os.getloadavg()
    print(f"(load average before: {load[0]:.2f}; after: {after[0]:.2f} / {after[1]:.2f} / {after[2]:.2f})")
    plain, plain_cpu = statistics.median(total["backup"]), statistics.median(cpu["backup"])
    print(
        "| undo | the undo alone | whole `migrate` (check + backup + migrate + undo) "
        "| vs plain `backup` | CPU | vs `backup` |"
    )
    print("|---|---|---|---|---|---|")
    for kind in kinds:
        if kind == "backup":
            continue
        whole, used = statistics.median(total[kind]), statistics.median(cpu[kind])
        print(
            f"| {kind} | {statistics.median(undo[kind]):.3f} s | {whole:.2f} s | **{whole / plain:.2f}×** "
            f"| {used:.2f} s | **{used / plain_cpu:.2f}×** |"
        )
    print(f"| plain `backup` | – | {plain:.2f} s | 1.00× | {plain_cpu:.2f} s | 1.00× |")


if __name__ == "__main__":
    main()
