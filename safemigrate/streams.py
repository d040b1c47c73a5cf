"""The byte streams that the codec and the vendor adapters pass around, as structural types.

A snapshot is written into a ``BackupWriter`` and a restore reads from a ``BackupReader``; neither is
a file, so the adapters take anything with the one method they call.
"""

from __future__ import annotations

from typing import Protocol


class ReadableStream(Protocol):
    """Has ``read(n)``: ``n`` bytes, fewer only at the end, ``b""`` once exhausted."""

    def read(self, n: int = -1, /) -> bytes: ...


class WritableStream(Protocol):
    """Has ``write(data)``, which takes all of ``data``."""

    def write(self, data: bytes, /) -> object: ...
