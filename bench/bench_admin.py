"""Benchmark: the admin's backup list with 1,000 backups in the folder (target: under 100 ms).

Builds a throwaway SQLite project database, makes one real verified backup and 999 copies of it
under other names (file + manifest each, as ``backup`` writes them), rebuilds the catalogue from
the folder (``backups --rescan``), then times ``GET /admin/safemigrate/backup/`` through Django's
test client in this process: server time only (no network, no browser), the median of ``--runs``
requests after two warm-up requests. Also prints the SQL queries and the manifests opened per
request. Run:

    .venv/bin/python bench/bench_admin.py                 # 1,000 backups, 15 runs
    .venv/bin/python bench/bench_admin.py --backups 5000 --runs 7
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backups", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--parts", action="store_true", help="also time the parts of the page")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-admin-"))
    try:
        run(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, args: argparse.Namespace) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="fitnessdb.settings",
        DATABASE_URL=f"sqlite:///{work / 'db.sqlite3'}",
        SAFEMIGRATE_BACKUP_DIR=str(work / "backups"),
        SECRET_KEY="bench",  # noqa: S106 - a throwaway benchmark database
        DEBUG="0",
        ALLOWED_HOSTS="testserver",
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from io import StringIO

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    import safemigrate.manifest as manifest_module
    from fitnessdb.tracker.models import Exercise
    from safemigrate.backup import create_backup
    from safemigrate.manifest import MANIFEST_SUFFIX, write_manifest

    call_command("migrate", verbosity=0, stdout=StringIO())
    user = get_user_model().objects.create_superuser("admin", "admin@example.com", "pw")
    Exercise.objects.create(name="Goblet squat", muscle_group="quadriceps", equipment="kettlebell")
    first = create_backup(alias="default", reason="bench").manifest
    folder = first.file_path.parent
    start = datetime.now(UTC)
    for i in range(1, args.backups):
        when = start - timedelta(hours=i)
        name = f"backup-bench-{when:%Y%m%dT%H%M%SZ}-default.sqlite3.zst"
        os.link(first.file_path, folder / name)
        write_manifest(
            replace(first, name=name, file=name, created=when.isoformat(), pinned=i % 50 == 0), folder
        )
    call_command("backups", "--rescan", stdout=StringIO())
    print(f"{len(list(folder.glob('*' + MANIFEST_SUFFIX))):,} backups in {folder}")

    client = Client()
    client.force_login(user)
    url = "/admin/safemigrate/backup/"
    opened = {"n": 0}
    real_read = manifest_module.read_json_file

    def counting_read(*a, **kw):  # type: ignore[no-untyped-def]
        opened["n"] += 1
        return real_read(*a, **kw)

    manifest_module.read_json_file = counting_read
    for _ in range(2):  # warm-up: templates, caches
        assert client.get(url).status_code == 200
    times, cpu = [], []
    for _ in range(args.runs):
        opened["n"] = 0
        with CaptureQueriesContext(connection) as queries:
            began, began_cpu = time.perf_counter(), time.process_time()
            response = client.get(url)
            times.append(time.perf_counter() - began)
            cpu.append(time.process_time() - began_cpu)
        assert response.status_code == 200
    print(
        f"GET {url}: median {statistics.median(times) * 1000:.1f} ms wall "
        f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}), "
        f"{statistics.median(cpu) * 1000:.1f} ms CPU, {args.runs} runs; "
        f"{len(queries.captured_queries)} SQL queries, {opened['n']} manifests opened per request"
    )
    if args.parts:
        parts(args.runs)


def parts(runs: int) -> None:
    """Where the time goes: the banner's health, the chart, the list itself (CPU ms, medians)."""
    from safemigrate import catalogue
    from safemigrate.admin import backup_chart
    from safemigrate.health import backup_health

    def cpu_ms(fn) -> float:  # type: ignore[no-untyped-def]
        samples = []
        for _ in range(runs):
            began = time.process_time()
            fn()
            samples.append(time.process_time() - began)
        return statistics.median(samples) * 1000

    print(f"  catalogued_backups: {cpu_ms(lambda: catalogue.catalogued_backups(alias='default')):.1f} ms")
    listed = catalogue.catalogued_backups(alias="default")
    health = cpu_ms(lambda: backup_health(alias="default", backups=listed))
    print(f"  backup_health (catalogue): {health:.1f} ms")
    print(f"  backup_health (folder): {cpu_ms(lambda: backup_health(alias='default')):.1f} ms")
    print(f"  backup_chart: {cpu_ms(backup_chart):.1f} ms")


if __name__ == "__main__":
    main()
