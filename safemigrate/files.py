"""File safety in one place: atomic writes, durable renames, checksums, no symlink followed.

Every file safemigrate writes is 0600 and reaches its final name by a rename that is made durable
(``fsync_dir``); a failed run removes only the files it created itself (``remove_files``).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import os
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from safemigrate.constants import CHUNK
from safemigrate.streams import ReadableStream

logger = logging.getLogger("safemigrate")


def fsync_dir(path: os.PathLike[str] | str) -> None:
    """Make a rename in ``path`` durable (a crash after it keeps the new name)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``path`` so a crash leaves the old or the new content, never a mix (0600, fsynced)."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")  # 0600, unique
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)  # the rename durable too


def stream_sha256(stream: ReadableStream) -> str:
    """The sha256 of everything left in ``stream``, read a chunk at a time."""
    digest = hashlib.sha256()
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: os.PathLike[str] | str) -> str:
    """The sha256 of a file's bytes."""
    with open(path, "rb") as f:
        return stream_sha256(f)


def create_exclusive(path: Path, *, created: list[Path]) -> int:
    """Create ``path`` (O_EXCL, 0600) and add it to ``created``, with SIGINT/SIGTERM held in between:
    a Ctrl-C never leaves a file its run does not know it made. FileExistsError if it exists."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        created.append(path)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)  # a held Ctrl-C is raised now
    return fd


def open_regular(path: Path) -> BinaryIO:
    """Open an existing regular file for reading without following a symlink (or blocking on a
    FIFO); OSError or ValueError for anything else."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        f.close()
        raise ValueError("not a regular file")
    return f


def remove_files(*paths: Path) -> None:
    """Remove what a failed run created; a file that cannot be removed is logged, never raised."""
    for path in paths:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            logger.warning("could not remove %s", path)


_removals: contextvars.ContextVar[list[threading.Thread] | None] = contextvars.ContextVar(
    "safemigrate_removals", default=None
)


def remove_soon(*paths: Path) -> None:
    """``remove_files`` on another thread inside ``removals_joined()`` (which waits for it), else now.

    Unlinking a large plaintext copy costs the kernel ~0.35 s per GB here, time the caller can
    spend on its next steps (fsync, read-back, manifest) instead of waiting.
    """
    pending = _removals.get()
    if pending is None:
        remove_files(*paths)
        return
    thread = threading.Thread(target=remove_files, args=paths, name="safemigrate-remove")
    thread.start()
    pending.append(thread)


@contextlib.contextmanager
def removals_joined() -> Iterator[None]:
    """Every ``remove_soon`` inside the block is finished when the block ends, however it ends."""
    pending: list[threading.Thread] = []
    token = _removals.set(pending)
    try:
        yield
    finally:
        _removals.reset(token)
        for thread in pending:
            thread.join()
