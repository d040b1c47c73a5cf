"""Backup names are reserved atomically, and a run only ever removes files it created."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from safemigrate.backup import create_backup
from safemigrate.exceptions import BackupError
from safemigrate.jsondump import create_json_dump
from safemigrate.vendors.sqlite import Adapter
from tests.safemigrate.helpers import ROOT

RESERVER = """
import json, os, sys, time
from datetime import UTC, datetime
from pathlib import Path
from safemigrate.manifest import partial_path, reserve_backup_name
directory, ready, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.005)
names = []
for n in range(30):
    name, fd = reserve_backup_name(
        reason="race", alias="default", extension="sqlite3.zst", directory=directory,
        when=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC), created=[],  # the same second for both
    )
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    if n % 2:  # a finished backup: renamed to its final name, as create_backup does
        partial_path(directory, name).replace(directory / name)
    names.append(name)
print(json.dumps(names))
"""


def test_reserve_backup_name__two_processes_in_the_same_second(tmp_path):
    directory = tmp_path / "backups"
    directory.mkdir()
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RESERVER, str(directory), str(tmp_path / f"ready{i}"), str(go)],
            cwd=ROOT,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
        assert time.monotonic() < deadline, "reservers did not start"
        assert all(proc.poll() is None for proc in procs), "a reserver died"
        time.sleep(0.05)
    go.touch()
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    names = {proc.pid: json.loads(out) for proc, out in zip(procs, outputs, strict=True)}
    every = [name for each in names.values() for name in each]
    assert len(set(every)) == len(every) == 60
    for pid, reserved in names.items():
        for n, name in enumerate(reserved):
            path = directory / name if n % 2 else directory / f".{name}.partial"
            assert path.read_text() == str(pid), name  # nobody wrote into another's file


@pytest.mark.django_db(transaction=True)
def test_create_backup__skips_and_keeps_another_runs_file_in_the_same_second(backup_dir):
    """Another run's in-progress file under the name this second would get is neither taken nor deleted."""
    backup_dir.mkdir()
    now = datetime.now(UTC)
    suffix = f"-default.{Adapter.raw_extension}.zst"
    others = [
        backup_dir / f".backup-race-{now + timedelta(seconds=s):%Y%m%dT%H%M%SZ}{suffix}.partial"
        for s in range(-1, 60)
    ]
    for other in others:
        other.write_bytes(b"another run's data")
    result = create_backup(alias="default", reason="race")
    assert result.path.name.endswith(f"-2{suffix}")
    assert all(other.read_bytes() == b"another run's data" for other in others)


@pytest.mark.django_db(transaction=True)
def test_create_json_dump__refuses_and_keeps_a_dump_of_the_same_backup_in_progress(backup_dir):
    manifest = create_backup(alias="default", reason="race").manifest
    stem = manifest.file.rsplit("-default.", 1)[0]
    other = backup_dir / f".{stem}-default.json.zst.partial"
    other.write_bytes(b"another run's dump")
    with pytest.raises(BackupError, match=f"a JSON dump of {manifest.name} is already being written"):
        create_json_dump(alias="default", backup=manifest)
    assert other.read_bytes() == b"another run's dump"
