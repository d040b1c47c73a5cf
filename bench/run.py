"""Run the benchmarks in bench/ one after another (never side by side: they would disturb each other).

    .venv/bin/python bench/run.py                 # every bench/bench_*.py with its defaults
    .venv/bin/python bench/run.py sqlite json     # bench_sqlite.py, then bench_json.py
    .venv/bin/python bench/run.py sqlite -- --sizes 10mb,200mb --runs 3   # options for each one

Exits non-zero if any benchmark failed. See bench/README.md for what each one measures.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    names, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    available = {p.stem.removeprefix("bench_"): p for p in sorted(BENCH.glob("bench_*.py"))}
    unknown = [n for n in names if n not in available]
    if unknown:
        print(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(available)}", file=sys.stderr)
        return 2
    failed = []
    for name in names or list(available):
        print(f"\n=== bench_{name}.py {' '.join(extra)}".rstrip(), flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(available[name]), *extra])  # noqa: S603
        print(
            f"=== bench_{name}.py: exit {code} after {time.perf_counter() - started:.0f}s",
            flush=True,
        )
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
