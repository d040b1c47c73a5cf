"""SQLite benchmark: verified backup, restore and no-op migrate against minimal pipelines.

Builds (or reuses) SQLite databases of ~10 MB, ~200 MB and ~1 GB with ``manage.py seed_demo``
under ``--workdir`` (never inside the repository), then measures, interleaved in one run
(A B A B ..., medians of ``--runs``), each in its own subprocess:

- ``manage.py backup --format json`` vs the minimal pipeline "SQLite online backup API -> zstd
  level 1 on 2 threads -> sha256 -> fsync" (``cp`` of the file printed for scale);
- ``manage.py restore NAME --noinput --no-safety-backup`` vs the minimal pipeline "sha256 of the
  file -> zstd decompress -> backup API into the live database";
- no-op ``manage.py migrate`` (safemigrate's) vs Django's own ``migrate`` with nothing to apply,
  in the same project without safemigrate installed (``bench/settings_without_safemigrate.py``), and
  vs Django's ``migrate`` command class with safemigrate installed (command overhead alone);
- peak RSS of every subprocess (``os.wait4``, the same figure as ``/usr/bin/time -v``).

Cache state: warm by default (every input file is read once right before each timed run);
``--cold`` drops the page cache before each run instead (root only, disturbs the whole machine).

Run: ``.venv/bin/python bench/bench_sqlite.py`` (see bench/README.md for the options).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
CHUNK = 1 << 20
MB = 1 << 20

#: label -> target size in bytes
SIZES: dict[str, int] = {"10mb": 10 * MB, "200mb": 200 * MB, "1gb": 1024 * MB}
#: bytes a generated workout (10 sets) adds to the database file, for the first seed_demo guess
BYTES_PER_WORKOUT = 1230


# --- subprocess measurement ------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    seconds: float
    max_rss_mb: float
    stdout: str
    cpu: float = 0.0
    """user + sys CPU seconds of the child: steadier than wall time on a shared machine."""


def run(
    args: Sequence[str], *, env: dict[str, str] | None = None, check: bool = True, cwd: Path = ROOT
) -> Run:
    """Run ``args``, returning wall time and peak RSS of the child (``ru_maxrss`` from wait4)."""
    with (
        open(os.devnull, "rb") as stdin,
        _tempfile("out") as out,
        _tempfile("err") as err,
    ):
        started = time.perf_counter()
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdin=stdin, stdout=out, stderr=err)  # noqa: S603
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if check and proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(map(str, args))}\n{stdout}{stderr}")
    cpu = usage.ru_utime + usage.ru_stime
    return Run(seconds=seconds, max_rss_mb=usage.ru_maxrss / 1024, stdout=stdout, cpu=cpu)


@contextlib.contextmanager
def _tempfile(kind: str):  # type: ignore[no-untyped-def]
    import tempfile

    with tempfile.TemporaryFile(prefix=f"bench-{kind}-") as f:
        yield f


def warm(*paths: Path) -> None:
    """Read each file once so the timed run starts with a warm page cache."""
    for path in paths:
        if path.exists():
            with path.open("rb", buffering=0) as f:
                while f.read(8 * MB):
                    pass


def drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


# --- databases -------------------------------------------------------------------------------
def project_env(db: Path, backups: Path, *, root: Path = ROOT, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEMIGRATE_")}
    env.update(
        DATABASE_URL=f"sqlite:///{db}",
        SAFEMIGRATE_BACKUP_DIR=str(backups),
        SECRET_KEY="bench",  # noqa: S106
        DEBUG="1",
        DJANGO_SETTINGS_MODULE="fitnessdb.settings",
        PYTHONPATH=os.pathsep.join([str(root), str(root / "bench")]),
    )
    env.update(extra)
    return env


def manage(*args: str, root: Path = ROOT) -> list[str]:
    return [sys.executable, str(root / "manage.py"), *args]


def compiled_copy(workdir: Path) -> Path:
    """The project copied to ``workdir/src`` with its bytecode compiled, as an install has it.

    This checkout runs with PYTHONDONTWRITEBYTECODE=1, so every ``manage.py`` start compiles the
    project's own modules from source (site-packages have their .pyc files); a pip install, or
    an image that runs ``compileall``, does not. The copy keeps the checkout free of .pyc files.
    """
    dest = workdir / "src"
    shutil.rmtree(dest, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("safemigrate", "fitnessdb", "templates"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    (dest / "bench").mkdir()
    shutil.copy2(ROOT / "manage.py", dest / "manage.py")
    shutil.copy2(BENCH / "settings_without_safemigrate.py", dest / "bench")
    run([sys.executable, "-m", "compileall", "-q", str(dest)])
    return dest


def db_size(db: Path) -> int:
    return sum(Path(f"{db}{s}").stat().st_size for s in ("", "-wal") if Path(f"{db}{s}").exists())


def checkpoint(db: Path) -> None:
    """Fold the WAL into the file, so ``cp`` of the file copies the whole database."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def ensure_database(label: str, target: int, workdir: Path, *, regenerate: bool) -> Path:
    """A migrated, seeded database of about ``target`` bytes; reused when already there."""
    db = workdir / f"db-{label}.sqlite3"
    marker = db.with_name(db.name + ".ready")
    if regenerate or not marker.exists():
        for suffix in ("", "-wal", "-shm", ".ready", ".safemigrate-lock"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        env = project_env(db, workdir / f"backups-{label}")
        started = time.perf_counter()
        run(manage("migrate", "--no-backup", "-v0"), env=env)
        workouts = max(1, target // BYTES_PER_WORKOUT)
        for _ in range(4):
            run(manage("seed_demo", "--workouts", str(workouts), "-v0"), env=env)
            checkpoint(db)
            size = db_size(db)
            if size >= 0.9 * target:
                break
            workouts = int(workouts * target / size * 1.02)  # seed_demo tops up to the target
        marker.write_text(json.dumps({"workouts": workouts, "size": db_size(db)}))
        print(
            f"  built {db} ({db_size(db) / MB:,.0f} MB, {workouts:,} workouts) "
            f"in {time.perf_counter() - started:.0f}s",
            flush=True,
        )
    checkpoint(db)
    return db


# --- the minimal pipelines (run as subprocesses of this script) -----------------------------
class _HashingWriter:
    def __init__(self, f) -> None:  # type: ignore[no-untyped-def]
        self.f, self.sha256 = f, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self.f.write(data)


def pipeline_backup(db: Path, out: Path) -> None:
    """SQLite online backup API -> zstd level 1 on 2 threads -> sha256 -> fsync."""
    import zstandard

    started = time.perf_counter()
    snapshot = out.with_name(out.name + ".snapshot")
    try:
        src, dst = sqlite3.connect(db), sqlite3.connect(snapshot)
        dst.execute("PRAGMA synchronous=OFF")
        src.backup(dst)
        dst.close()
        src.close()
        cctx = zstandard.ZstdCompressor(level=1, threads=2)
        with snapshot.open("rb") as fin, out.open("wb") as fout:
            sink = _HashingWriter(fout)
            with cctx.stream_writer(sink, closefd=False) as writer:
                while chunk := fin.read(CHUNK):
                    writer.write(chunk)
            fout.flush()
            os.fsync(fout.fileno())
    finally:
        snapshot.unlink(missing_ok=True)
    print(json.dumps({"sha256": sink.sha256.hexdigest(), "seconds": time.perf_counter() - started}))


def pipeline_restore(backup: Path, db: Path) -> None:
    """sha256 of the file -> zstd decompress -> backup API into the live database."""
    import zstandard

    started = time.perf_counter()
    digest = hashlib.sha256()
    with backup.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    scratch = db.with_name(db.name + ".pipeline-restore")
    try:
        with backup.open("rb") as fin, scratch.open("wb") as fout:
            zstandard.ZstdDecompressor().copy_stream(fin, fout, read_size=CHUNK, write_size=CHUNK)
        src, live = sqlite3.connect(scratch), sqlite3.connect(db)
        live.execute("PRAGMA synchronous=NORMAL")  # as the project's settings set it
        src.backup(live)
        live.close()
        src.close()
    finally:
        scratch.unlink(missing_ok=True)
    print(json.dumps({"sha256": digest.hexdigest(), "seconds": time.perf_counter() - started}))


def django_migrate() -> None:
    """``manage.py migrate`` with Django's own Command class, safemigrate still installed."""
    import django.core.management as management
    from django.core.management.commands import migrate

    original = management.load_command_class

    def load_command_class(app_name: str, name: str):  # type: ignore[no-untyped-def]
        return migrate.Command() if name == "migrate" else original(app_name, name)

    management.load_command_class = load_command_class
    management.execute_from_command_line(["manage.py", *sys.argv[2:]])


# --- the benchmark ---------------------------------------------------------------------------
@dataclass
class Samples:
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.values.setdefault(name, []).append(value)

    def median(self, name: str) -> float:
        return statistics.median(self.values[name]) if self.values.get(name) else float("nan")

    def max(self, name: str) -> float:
        return max(self.values[name]) if self.values.get(name) else float("nan")


def interleaved(runs: int, steps: Sequence[Callable[[], None]]) -> None:
    """A B A B ...: every round runs each step once, the order alternating between rounds."""
    for i in range(runs):
        for step in steps if i % 2 == 0 else list(reversed(steps)):
            step()


def bench_size(label: str, db: Path, workdir: Path, args: argparse.Namespace) -> dict[str, float]:
    backups = workdir / f"backups-{label}"
    shutil.rmtree(backups, ignore_errors=True)
    backups.mkdir(parents=True)
    env = project_env(db, backups, DJANGO_SETTINGS_MODULE=args.settings)
    s = Samples()
    prepare = drop_caches if args.cold else warm
    me = [sys.executable, str(Path(__file__).resolve())]
    made: list[str] = []
    wal = Path(f"{db}-wal")

    # backup -------------------------------------------------------------------------------
    def ours_backup() -> None:
        prepare(db, wal)
        r = run(manage("backup", "--format", "json", "--reason", "bench", "-v0"), env=env)
        data = json.loads(r.stdout)
        s.add("backup", r.seconds)
        s.add("backup_cpu", r.cpu)
        s.add("backup_lib", data["duration"])  # create_backup() up to the verified file
        s.add("backup_rss", r.max_rss_mb)
        s.add("backup_size", data["size"])
        for old in made:  # keep only the newest, for the restore runs (and the disk)
            for path in backups.glob(f"{old}*"):
                path.unlink()
        made[:] = [data["name"]]

    def pipe_backup() -> None:
        out = workdir / f"pipeline-{label}.zst"
        prepare(db, wal)
        r = run([*me, "_pipeline-backup", str(db), str(out)])
        s.add("backup_pipe", r.seconds)
        s.add("backup_pipe_cpu", r.cpu)
        s.add("backup_pipe_work", json.loads(r.stdout)["seconds"])
        s.add("backup_pipe_rss", r.max_rss_mb)
        out.unlink()

    def cp() -> None:
        copy = workdir / f"copy-{label}.sqlite3"
        prepare(db)
        r = run(["cp", str(db), str(copy)])
        f = run(["sync", str(copy)])
        s.add("cp", r.seconds)
        s.add("cp_fsync", r.seconds + f.seconds)
        copy.unlink()

    # --baseline: the same backup from another checkout (e.g. the parent commit), in the same rounds
    base = args.baseline
    base_backups = workdir / f"backups-{label}-baseline"
    base_made: list[str] = []

    def base_backup() -> None:
        shutil.rmtree(base_backups, ignore_errors=True)
        base_backups.mkdir(parents=True)
        base_env = project_env(db, base_backups, root=base, DJANGO_SETTINGS_MODULE=args.settings)
        prepare(db, wal)
        r = run(
            manage("backup", "--format", "json", "--reason", "bench", "-v0", root=base),
            env=base_env,
            cwd=base,
        )
        s.add("base_backup", r.seconds)
        s.add("base_backup_cpu", r.cpu)
        s.add("base_backup_lib", json.loads(r.stdout)["duration"])
        base_made[:] = [json.loads(r.stdout)["name"]]

    interleaved(args.runs, [ours_backup, pipe_backup, cp, *([base_backup] if base else [])])

    # restore (the newest backup, into the same database: its content stays the same) --------
    name = made[0]
    stored = backups / name

    def ours_restore() -> None:
        prepare(stored, db, wal)
        r = run(manage("restore", name, "--noinput", "--no-safety-backup", "-v1"), env=env)
        match = re.search(r"Restored \S+ in ([\d.]+)s", r.stdout)
        s.add("restore", r.seconds)
        s.add("restore_cpu", r.cpu)
        s.add("restore_lib", float(match.group(1)) if match else float("nan"))
        s.add("restore_rss", r.max_rss_mb)

    def pipe_restore() -> None:
        prepare(stored, db, wal)
        r = run([*me, "_pipeline-restore", str(stored), str(db)])
        s.add("restore_pipe", r.seconds)
        s.add("restore_pipe_cpu", r.cpu)
        s.add("restore_pipe_work", json.loads(r.stdout)["seconds"])
        s.add("restore_pipe_rss", r.max_rss_mb)

    def base_restore() -> None:
        base_env = project_env(db, base_backups, root=base, DJANGO_SETTINGS_MODULE=args.settings)
        prepare(base_backups / base_made[0], db, wal)
        command = manage("restore", base_made[0], "--noinput", "--no-safety-backup", "-v1", root=base)
        r = run(command, env=base_env, cwd=base)
        match = re.search(r"Restored \S+ in ([\d.]+)s", r.stdout)
        s.add("base_restore", r.seconds)
        s.add("base_restore_cpu", r.cpu)
        s.add("base_restore_lib", float(match.group(1)) if match else float("nan"))

    interleaved(args.runs, [ours_restore, pipe_restore, *([base_restore] if base else [])])
    shutil.rmtree(base_backups, ignore_errors=True)

    # no-op migrate: from the compiled copy (as installed) and from this checkout (sources) ----
    src = args.compiled
    plain = "settings_without_safemigrate"
    env_c = project_env(db, backups, root=src)
    plain_env_c = project_env(db, backups, root=src, DJANGO_SETTINGS_MODULE=plain)
    plain_env = project_env(db, backups, DJANGO_SETTINGS_MODULE=plain)

    def ours_noop() -> None:
        r = run(manage("migrate", "-v0", root=src), env=env_c, cwd=src)
        s.add("noop", r.seconds)
        s.add("noop_rss", r.max_rss_mb)

    def plain_noop() -> None:
        s.add("noop_plain", run(manage("migrate", "-v0", root=src), env=plain_env_c, cwd=src).seconds)

    def ours_noop_source() -> None:
        s.add("noop_source", run(manage("migrate", "-v0"), env=env).seconds)

    def plain_noop_source() -> None:
        s.add("noop_plain_source", run(manage("migrate", "-v0"), env=plain_env).seconds)

    def django_noop_source() -> None:
        s.add("noop_django", run([*me, "_django-migrate", "migrate", "-v0"], env=env).seconds)

    if args.database is None:  # a given file may not be this project's: bench_noop.py covers it
        out = run(manage("migrate", "-v1", root=src), env=env_c, cwd=src).stdout  # warm-up, and:
        if "No migrations to apply" not in out:
            raise SystemExit(f"{db}: migrate had something to apply; the no-op figures would be wrong")
        interleaved(
            args.noop_runs,
            [ours_noop, plain_noop, ours_noop_source, plain_noop_source, django_noop_source],
        )
    for name in ("noop", "noop_plain", "noop_source", "noop_plain_source", "noop_django"):
        s.values.setdefault(name, [])

    checkpoint(db)
    shutil.rmtree(backups, ignore_errors=True)
    medians = {k: s.median(k) for k in s.values if not k.endswith("_rss")}
    peaks = {k: s.max(k) for k in s.values if k.endswith("_rss")}
    return {"db_mb": db_size(db) / MB, **medians, **peaks}


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×"


def report(results: dict[str, dict[str, float]], *, cold: bool, runs: int, noop_runs: int) -> str:
    cache = (
        "cold cache (page cache dropped before each run)"
        if cold
        else "warm cache (each input file read once right before each run)"
    )
    lines = [
        f"SQLite, {cache}. Medians of {runs} interleaved runs ({noop_runs} for no-op migrate);",
        "wall time of each command as a subprocess (Python and Django start-up included).",
        "",
        "| database | backup | pipeline | ratio | cp | restore | pipeline | ratio "
        "| peak RSS backup / restore | no-op migrate ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in results.items():
        lines.append(
            f"| {label} ({r['db_mb']:,.0f} MB, backup {r['backup_size'] / MB:,.0f} MB) "
            f"| {r['backup']:.2f} s | {r['backup_pipe']:.2f} s "
            f"| **{ratio(r['backup'], r['backup_pipe'])}** | {r['cp']:.2f} s "
            f"| {r['restore']:.2f} s | {r['restore_pipe']:.2f} s "
            f"| **{ratio(r['restore'], r['restore_pipe'])}** "
            f"| {r['backup_rss']:.0f} / {r['restore_rss']:.0f} MB "
            f"| **{ratio(r['noop'], r['noop_plain'])}** |"
        )
    lines += [
        "",
        "CPU time (user + sys of each process, threads included): what the machine's load moves least.",
        "",
        "| database | backup CPU / pipeline | ratio | restore CPU / pipeline | ratio |",
        "|---|---|---|---|---|",
    ]
    for label, r in results.items():
        lines.append(
            f"| {label} | {r['backup_cpu']:.2f} / {r['backup_pipe_cpu']:.2f} s "
            f"| {ratio(r['backup_cpu'], r['backup_pipe_cpu'])} "
            f"| {r['restore_cpu']:.2f} / {r['restore_pipe_cpu']:.2f} s "
            f"| {ratio(r['restore_cpu'], r['restore_pipe_cpu'])} |"
        )
    lines += [
        "",
        "No-op migrate: ours vs Django's own `migrate` in the same project without safemigrate",
        "(bench/settings_without_safemigrate.py), both from a bytecode-compiled copy of the code,",
        "as installed. Details below: the work alone (ours: the duration the command reports,",
        "without start-up; pipelines: timed inside their process), cp + fsync, the pipelines'",
        "peak RSS, and no-op `migrate` compiled and from this checkout's sources",
        "(PYTHONDONTWRITEBYTECODE=1: every start compiles the project's modules), where Django's",
        "command class in the same project shows the command's own overhead.",
        "",
        "| database | backup work / pipeline | ratio | restore work / pipeline | ratio "
        "| cp + fsync | pipelines' RSS | no-op compiled: ours / Django | no-op from sources: "
        "ours / Django / Django's command, safemigrate installed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in results.items():
        lines.append(
            f"| {label} | {r['backup_lib']:.2f} / {r['backup_pipe_work']:.2f} s "
            f"| {ratio(r['backup_lib'], r['backup_pipe_work'])} "
            f"| {r['restore_lib']:.2f} / {r['restore_pipe_work']:.2f} s "
            f"| {ratio(r['restore_lib'], r['restore_pipe_work'])} "
            f"| {r['cp_fsync']:.2f} s "
            f"| {r['backup_pipe_rss']:.0f} / {r['restore_pipe_rss']:.0f} MB "
            f"| {r['noop']:.3f} / {r['noop_plain']:.3f} s "
            f"| {r['noop_source']:.3f} / {r['noop_plain_source']:.3f} / {r['noop_django']:.3f} s "
            f"({ratio(r['noop_source'], r['noop_plain_source'])}, "
            f"{ratio(r['noop_source'], r['noop_django'])}) |"
        )
    based = {label: r for label, r in results.items() if "base_backup" in r}
    if based:
        lines += [
            "",
            "Before (--baseline) and now, in the same rounds: wall / CPU / work, now ÷ before.",
            "",
            "| database | backup before | backup now | ratio wall / CPU / work "
            "| restore before | restore now | ratio wall / CPU / work |",
            "|---|---|---|---|---|---|---|",
        ]
    for label, r in based.items():
        cells = []
        for op in ("backup", "restore"):
            b = [r[f"base_{op}"], r[f"base_{op}_cpu"], r[f"base_{op}_lib"]]
            n = [r[op], r[f"{op}_cpu"], r[f"{op}_lib"]]
            cells += [
                " / ".join(f"{x:.2f}" for x in b) + " s",
                " / ".join(f"{x:.2f}" for x in n) + " s",
                " / ".join(ratio(x, y) for x, y in zip(n, b, strict=True)),
            ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_pipeline-backup":
        return pipeline_backup(Path(argv[1]), Path(argv[2]))
    if argv and argv[0] == "_pipeline-restore":
        return pipeline_restore(Path(argv[1]), Path(argv[2]))
    if argv and argv[0] == "_django-migrate":
        return django_migrate()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--runs", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--noop-runs", type=int, default=11, help="rounds for no-op migrate (default 11)")
    parser.add_argument(
        "--workdir", type=Path, default=Path("/tmp/bench"), help="databases and backups go here"
    )
    parser.add_argument("--regenerate", action="store_true", help="rebuild the databases")
    parser.add_argument(
        "--database",
        type=Path,
        help="measure this existing SQLite file instead of building --sizes (e.g. the 1 GB one "
        "bench_rollback.py builds in a minute; seed_demo takes far longer)",
    )
    parser.add_argument(
        "--settings",
        default="fitnessdb.settings",
        help="settings module for our commands (tests.settings for bench_rollback.py's database)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (e.g. `git archive HEAD~1 | tar -x -C DIR`): its backup and restore "
        "run in the same interleaved rounds, printed as 'before'",
    )
    parser.add_argument("--cold", action="store_true", help="drop the page cache before runs")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size {unknown[0]!r}; choose from {', '.join(SIZES)}")
    workdir = args.workdir.resolve()
    if workdir == ROOT or ROOT in workdir.parents:
        parser.error("--workdir must be outside the repository")
    if args.cold and os.geteuid() != 0:
        parser.error("--cold needs root (it writes /proc/sys/vm/drop_caches)")
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(f"databases in {workdir}; load average {os.getloadavg()[0]:.2f}", flush=True)
    if args.database is not None:
        checkpoint(args.database)
        dbs = {args.database.stem: args.database.resolve()}
    else:
        dbs = {
            label: ensure_database(label, SIZES[label], workdir, regenerate=args.regenerate)
            for label in sizes
        }
    args.compiled = compiled_copy(workdir)
    results: dict[str, dict[str, float]] = {}
    for label, db in dbs.items():
        print(f"measuring {label} ...", flush=True)
        results[label] = bench_size(label, db, workdir, args)
    print()
    print(report(results, cold=args.cold, runs=args.runs, noop_runs=args.noop_runs))
    print(f"load average at the end: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"\ntotal {time.perf_counter() - started:.0f}s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return None


if __name__ == "__main__":
    main()
