"""Ctrl-C and SIGTERM during a guarded migration: an interrupt where it is safe, held where it is not.

``interruptible()`` covers the whole guarded section (checks, backup, migrate, post-check): SIGINT
and SIGTERM (a container stop) raise KeyboardInterrupt, so the run ends through its own rollback
instead of Python's default handler. ``deferred()`` covers what must not be cut in half (a COMMIT,
a ROLLBACK, a restore): signals arriving then are remembered, and a second Ctrl-C cannot abort it.
Signals reach only the main thread; elsewhere both are no-ops.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger("safemigrate")

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_depth = 0  # nesting of deferred()
_sections = 0  # nesting of interruptible()
_pending: list[int] = []
_settled = False  # the outcome is decided (committed, or undone): hold signals to the end


def _handle(signum: int, frame: Any) -> None:
    if _depth or _settled:
        _pending.append(signum)
        logger.warning("%s received; finishing the current step first", signal.Signals(signum).name)
        return
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def _installed() -> Iterator[None]:
    previous: dict[signal.Signals, Any] = {}
    try:
        for sig in _SIGNALS:
            previous[sig] = signal.signal(sig, _handle)
    except ValueError:  # not the main thread: signals cannot reach us here anyway
        pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt("SIGINT"/"SIGTERM") inside the block."""
    global _sections, _settled
    try:
        with _installed():
            _sections += 1
            try:
                yield
            finally:
                _sections -= 1
    finally:
        if _sections == 0:  # only now: until the handlers are restored, a settled run holds signals
            _settled = False


def ignore_once_done() -> None:
    """For a process that ends with this command (``manage.py migrate``): SIGINT/SIGTERM are
    ignored outside the guarded section, so once it has reported its outcome a late signal cannot
    add a traceback from Python's own handler on the way out. ``interruptible()`` restores this.
    """
    for sig in _SIGNALS:
        with contextlib.suppress(ValueError):  # not the main thread
            signal.signal(sig, signal.SIG_IGN)


def settle() -> None:
    """The outcome is decided: until the outermost section ends, signals are remembered, not raised.

    So the line that reports a COMMIT or an undo always gets out, whatever arrives meanwhile.
    """
    global _settled
    if _sections:
        _settled = True


@contextlib.contextmanager
def deferred(*, reraise: bool = True) -> Iterator[list[int]]:
    """Hold SIGINT/SIGTERM until the block ends; yields the list of signals held.

    Outside a guarded section, a held SIGINT is raised as KeyboardInterrupt once the block is done
    (a stand-alone restore stops after its swap) unless ``reraise`` is False; inside one, the
    section decides what it means.
    """
    global _depth
    with _installed() if _depth == 0 and _sections == 0 else contextlib.nullcontext():
        if _depth == 0:
            _pending.clear()
        _depth += 1
        held = _pending
        try:
            yield held
        finally:
            _depth -= 1
    if reraise and _depth == 0 and _sections == 0 and signal.SIGINT in held:
        _pending.clear()
        raise KeyboardInterrupt
