"""No-op ``migrate`` (every container start) against Django's own, in CPU time.

Runs, interleaved (A B C, C B A, ...; medians of ``--runs``), each as a ``manage.py``
subprocess from a bytecode-compiled copy of the code (as a pip install or an image that runs
``compileall`` has it), on a seeded SQLite database with nothing to apply:

- ours: ``manage.py migrate`` (safemigrate's);
- Django: ``migrate`` in the same project without safemigrate installed
  (``bench/settings_without_safemigrate.py``): what installing safemigrate costs a start;
- Django's command class with safemigrate installed: the command's own overhead.

CPU time is user + sys of the child (``os.wait4``): on a shared machine it is far steadier than
wall time, which is printed too. Run: ``.venv/bin/python bench/bench_noop.py [--runs 15]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from bench_sqlite import SIZES, compiled_copy, ensure_database, manage, project_env, run

BENCH = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="interleaved rounds (default 15)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench"))  # noqa: S108
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    db = ensure_database("10mb", SIZES["10mb"], workdir, regenerate=False)
    src = compiled_copy(workdir)
    backups = workdir / "backups-noop"
    env = project_env(db, backups, root=src)
    plain = project_env(db, backups, root=src, DJANGO_SETTINGS_MODULE="settings_without_safemigrate")
    django_cmd = [sys.executable, str(BENCH / "bench_sqlite.py"), "_django-migrate", "migrate", "-v0"]
    out = run(manage("migrate", "-v1", root=src), env=env, cwd=src).stdout
    if "No migrations to apply" not in out:
        raise SystemExit(f"{db}: migrate had something to apply; the no-op figures would be wrong")
    contenders = {
        "ours": lambda: run(manage("migrate", "-v0", root=src), env=env, cwd=src),
        "django": lambda: run(manage("migrate", "-v0", root=src), env=plain, cwd=src),
        "django_cmd": lambda: run(django_cmd, env=env, cwd=src),
    }
    cpu: dict[str, list[float]] = {k: [] for k in contenders}
    wall: dict[str, list[float]] = {k: [] for k in contenders}
    names = list(contenders)
    for i in range(args.runs):
        for name in names if i % 2 == 0 else reversed(names):
            r = contenders[name]()
            cpu[name].append(r.cpu)
            wall[name].append(r.seconds)
    med = {k: statistics.median(v) for k, v in cpu.items()}
    medw = {k: statistics.median(v) for k, v in wall.items()}
    print(f"No-op migrate, compiled bytecode, medians of {args.runs} interleaved runs")
    print(
        f"(load average before: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; after: "
        f"{' / '.join(f'{x:.2f}' for x in os.getloadavg())})"
    )
    print("| command | CPU (user+sys) | ratio | wall | ratio |")
    print("|---|---|---|---|---|")
    labels = {
        "ours": "safemigrate's `migrate`",
        "django": "Django's `migrate`, safemigrate not installed",
        "django_cmd": "Django's `migrate` command, safemigrate installed",
    }
    for name in names:
        print(
            f"| {labels[name]} | {med[name]:.3f} s | {med[name] / med['django']:.3f}× "
            f"| {medw[name]:.3f} s | {medw[name] / medw['django']:.3f}× |"
        )


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - started:.0f}s")
