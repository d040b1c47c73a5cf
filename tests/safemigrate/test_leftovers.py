"""Plaintext copies stay private, and what a killed run leaves behind is swept (not a live one's)."""

from __future__ import annotations

import os
import signal
import stat
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from safemigrate.backup import create_backup
from safemigrate.leftovers import sweep_leftovers
from tests.safemigrate.helpers import hold_lock, manage, popen, prepared_db
from tests.safemigrate.test_faults import fill


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


@pytest.mark.django_db(transaction=True)
def test_backup__plaintext_snapshot_is_0600_in_a_0700_folder_and_the_folder_is_tightened(backup_dir):
    backup_dir.mkdir(mode=0o755)
    backup_dir.chmod(0o755)  # as the image's mkdir -p leaves it
    seen: list[tuple[str, int, int]] = []

    def progress(message: str) -> None:
        for path in (backup_dir / ".work").glob(".snapshot-*"):
            seen.append((path.name, mode(path), mode(path.parent)))

    create_backup(alias="default", progress=progress)
    assert seen, "the snapshot was never seen"
    assert {(m, parent) for _, m, parent in seen} == {(0o600, 0o700)}
    assert mode(backup_dir) == 0o700
    assert not list((backup_dir / ".work").iterdir())


def test_kill_9_during_backup__leftover_is_private_kept_while_alive_swept_once_dead(tmp_path):
    """A real backup process: its snapshot survives a sweep while it runs, and SIGKILL leaves a
    0600 plaintext copy that the next `backups` removes and names."""
    env = prepared_db(tmp_path)
    fill(tmp_path / "db.sqlite3", 400_000)
    work = tmp_path / "backups" / ".work"
    proc = popen("backup", env=env)
    try:
        deadline = time.monotonic() + 120
        snapshot = None
        while snapshot is None and proc.poll() is None and time.monotonic() < deadline:
            snapshot = next(iter(work.glob(".snapshot-*.sqlite3")), None) if work.is_dir() else None
            time.sleep(0.005)
        assert snapshot is not None, "the backup finished before its snapshot was seen"
        age(snapshot, 3600)  # old, but its process is alive: not swept
        assert sweep_leftovers(tmp_path / "backups") == []
        assert snapshot.exists()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert f"-{proc.pid}-" in snapshot.name
    assert mode(snapshot) == 0o600
    assert mode(work) == 0o700
    assert mode(tmp_path / "backups") == 0o700
    for leftover in [snapshot, *(tmp_path / "backups").glob(".*.partial")]:
        age(leftover, 7200)
    result = manage("backups", env=env)
    assert result.returncode == 0, result.stderr
    assert f"Removed {snapshot.name}, left behind by an interrupted run" in result.stderr
    assert not snapshot.exists()
    assert not list((tmp_path / "backups").glob(".*.partial"))


@pytest.mark.django_db(transaction=True)
def test_rotation__sweeps_a_dead_fetch_and_says_so(backup_dir):
    create_backup(alias="default")
    dead = popen("--version", env=dict(os.environ))
    dead.wait()
    leftover = backup_dir / ".work" / f".backup-x.manifest.json.fetch-{dead.pid}"
    leftover.write_bytes(b"{}")
    age(leftover, 120)
    mine = backup_dir / ".work" / f".backup-y.manifest.json.fetch-{os.getpid()}"
    mine.write_bytes(b"{}")
    age(mine, 120)
    out = StringIO()
    call_command("cleanupbackups", stdout=out)
    assert f"Removed {leftover.name} (left behind by an interrupted run)" in out.getvalue()
    assert not leftover.exists()
    assert mine.exists()  # this process is alive


def test_backups__does_not_sweep_while_another_process_holds_the_lock(tmp_path):
    """A pid this host cannot see may be a backup running in another container: it holds the lock."""

    env = prepared_db(tmp_path)
    work = tmp_path / "backups" / ".work"
    work.mkdir(parents=True)
    gone = popen("--version", env=env)
    gone.wait()
    leftover = work / f".restore-{gone.pid}-1.sqlite3"
    leftover.write_bytes(b"plaintext")
    age(leftover, 3600)
    holder = hold_lock(env)
    try:
        assert manage("backups", env=env).returncode == 0
        assert leftover.exists()
    finally:
        holder.kill()
        holder.wait()
    result = manage("backups", env=env)
    assert f"Removed {leftover.name}" in result.stderr
    assert not leftover.exists()
