"""``remove_soon``: a large plaintext copy is unlinked on another thread, and is gone when the
``removals_joined()`` block (a backup, a restore) ends, however it ends."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from safemigrate import files
from safemigrate.files import removals_joined, remove_soon


def slow_removal(monkeypatch: pytest.MonkeyPatch, seconds: float) -> list[str]:
    """remove_files, but only after ``seconds``; returns the names of the threads it ran on."""
    threads: list[str] = []
    real = files.remove_files

    def remove_files(*paths: Path) -> None:
        threads.append(threading.current_thread().name)
        threading.Event().wait(seconds)
        real(*paths)

    monkeypatch.setattr(files, "remove_files", remove_files)
    return threads


def test_remove_soon__outside_a_block_removes_at_once(tmp_path):
    path = tmp_path / "copy"
    path.write_bytes(b"plaintext")
    remove_soon(path, tmp_path / "missing-journal")
    assert not path.exists()


def test_remove_soon__runs_on_another_thread_and_the_block_waits_for_it(tmp_path, monkeypatch):
    threads = slow_removal(monkeypatch, 0.3)
    path = tmp_path / "copy"
    path.write_bytes(b"plaintext")
    with removals_joined():
        remove_soon(path)
        assert path.exists()  # not waited for here: the caller goes on
    assert not path.exists()
    assert threads == ["safemigrate-remove"]


def test_remove_soon__a_failing_block_still_waits(tmp_path, monkeypatch):
    slow_removal(monkeypatch, 0.3)
    path = tmp_path / "copy"
    path.write_bytes(b"plaintext")

    def failing_run() -> None:
        with removals_joined():
            remove_soon(path)
            raise RuntimeError("the backup failed")

    with pytest.raises(RuntimeError):
        failing_run()
    assert not path.exists()
