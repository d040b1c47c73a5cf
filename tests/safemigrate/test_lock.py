"""The migration lock with real threads: re-entrant in the thread that holds it, exclusive across threads."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from safemigrate.exceptions import LockTimeout
from safemigrate.lock import migration_lock


def in_thread(target) -> threading.Thread:
    def run() -> None:
        try:
            target()
        finally:
            connections.close_all()  # this thread's own connections

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_migration_lock__a_second_thread_waits_for_the_first():
    events: list[str] = []
    holding, release = threading.Event(), threading.Event()

    def first() -> None:
        with migration_lock(alias="default"), migration_lock(alias="default"):  # re-entrant here
            events.append("first holds")
            holding.set()
            release.wait(60)
            events.append("first releases")

    def second(timeout: float) -> None:
        try:
            with migration_lock(alias="default", timeout=timeout):
                events.append("second holds")
        except LockTimeout:
            events.append("second timed out")

    holder = in_thread(first)
    assert holding.wait(60)
    in_thread(lambda: second(0.5)).join(60)
    assert events == ["first holds", "second timed out"]

    waiter = in_thread(lambda: second(60))
    waiter.join(0.5)
    assert events[-1] == "second timed out"  # still waiting while the first thread holds it
    release.set()
    holder.join(60)
    waiter.join(60)
    assert events == ["first holds", "second timed out", "first releases", "second holds"]
