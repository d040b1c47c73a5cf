"""Run manage.py in a real subprocess against a throwaway SQLite file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def project_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SAFEMIGRATE_", "MIGRAPP_")) or k == "SAFEMIGRATE_TEST_USE_TZ"
    }
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        SAFEMIGRATE_BACKUP_DIR=str(tmp_path / "backups"),
        SECRET_KEY="test",
        DEBUG="1",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


def manage(
    *args: str, env: dict[str, str], input: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        input=input,
        timeout=timeout,
    )


def popen(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def prepared_db(tmp_path: Path, items: int = 3) -> dict[str, str]:
    """A database fully migrated but migrapp at 0001 with ``items`` rows: 0002 pending."""
    env = project_env(tmp_path)
    for args in (
        ("migrate", "--no-backup", "-v0"),
        ("migrate", "migrapp", "0001", "--no-backup", "-v0"),
    ):
        result = manage(*args, env=env)
        assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "db.sqlite3") as conn:
        conn.executemany(
            "INSERT INTO migrapp_item (name, qty) VALUES (?, ?)",
            [(f"item{n}", n) for n in range(items)],
        )
    return env


def table_dump(db: Path) -> dict[str, list[tuple]]:
    """Every row of every table (safemigrate's own log tables left out)."""
    with sqlite3.connect(db) as conn:
        tables = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
            if not r[0].startswith(("sqlite_", "safemigrate_"))
        ]
        return {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall() for t in tables}  # noqa: S608


def schema(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()


def files_in(folder: Path) -> list[Path]:
    """Every file under ``folder`` (the private ``.work`` folder included), sorted."""
    return sorted(p for p in folder.rglob("*") if not p.is_dir()) if folder.exists() else []


KEPT_HIDDEN = {".manifests.lock", ".safemigrate-status.json", ".safemigrate-runs.jsonl", "made-here"}
"""Hidden files that belong in the backup folder: the manifests' lock, the notification status,
the migration-run journal, the journal of server backups made here (safemigrate.provenance)."""


def temp_files(folder: Path) -> list[Path]:
    """Temporary files left under ``folder``: hidden ones, and anything in the ``.work`` folder."""
    return [
        p
        for p in files_in(folder)
        if p.name not in KEPT_HIDDEN and any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]


class Writer:
    """A process writing beside a migration, one row every 20 ms until stopped.

    ``script`` gets ``*args``, then the stop file and the progress file: it prints ``ack <n> ...``
    for each acknowledged write and writes the number of each attempt to the progress file before
    making it (what migrapp 0002's MIGRAPP_WAIT_WRITES waits on). Every wait here counts writes,
    never seconds, so a loaded machine makes the test slower, not wrong.
    """

    def __init__(self, script: str, *args: str, folder: Path) -> None:
        self.stop_file, self.progress = folder / "stop-writer", folder / "writer-progress"
        for path in (self.stop_file, self.progress, self.window_file):
            path.unlink(missing_ok=True)
        argv = [sys.executable, "-c", script, *args, str(self.stop_file), str(self.progress)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def window_file(self) -> Path:
        return self.progress.with_name(f"{self.progress.name}.window")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def acked(self) -> set[str]:
        """The names of the rows the writer was told are written (``w<n>``)."""
        return {f"w{p[1]}" for p in (line.split() for line in list(self.lines)) if p[0] == "ack"}

    def wait_acked(self, count: int, timeout: float = 120) -> None:
        """Until ``count`` more writes than now are acknowledged."""
        goal = len(self.acked()) + count
        deadline = time.monotonic() + timeout
        while len(self.acked()) < goal:
            assert self.proc.poll() is None, self.lines[-5:]
            assert time.monotonic() < deadline, f"the writer acknowledged {len(self.acked())} of {goal}"
            time.sleep(0.01)

    def hold_migration(self, count: int) -> dict[str, str]:
        """The environment that holds migrapp 0002, before its first change, until ``count``
        more writes started (``count - 1`` of them made)."""
        return {"MIGRAPP_WAIT_WRITES": f"{self.progress}:{count}"}

    def during_migration(self, count: int) -> set[str]:
        """The rows of the writes made while migrapp 0002 was held (asserted: ``count - 1``)."""
        first, last = map(int, self.window_file.read_text().split())
        assert last >= first + count, f"only {last - first} writes started during the migration"
        return {f"w{n}" for n in range(first + 1, last)}

    def stop(self) -> None:
        self.stop_file.touch()
        self.proc.wait(timeout=60)
        self._reader.join(timeout=60)

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def hold_lock(env: dict[str, str]) -> subprocess.Popen[str]:
    """A process holding the migration lock until the test kills it (started once it says so)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "manage.py"),
            "shell",
            "--no-imports",
            "-c",
            "from safemigrate.lock import migration_lock\nimport time\n"
            "with migration_lock(alias='default'):\n    print('locked', flush=True)\n    time.sleep(600)",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert "locked" in holder.stdout.readline()
    return holder
