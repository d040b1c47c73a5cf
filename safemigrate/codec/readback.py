"""Reading a stored file back in full: what makes a backup "verified".

``StoredFileVerifier`` reads a backup back while it is being written (on another core);
``verify_encoded_file`` reads a finished file back (JSON dumps).
"""

from __future__ import annotations

import hashlib
import os
import threading

from safemigrate.codec.compression import BackupReader, EncodedStats
from safemigrate.constants import CHUNK
from safemigrate.exceptions import ChecksumMismatch, SafeMigrateError


class _VerifyAborted(Exception):
    """The write failed or was interrupted: stop reading back."""


class _GrowingFile:
    """Reads a file that another thread is still writing, waiting for more until ``end()``."""

    def __init__(self, path: os.PathLike[str] | str) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        self.pos = 0
        self.final: int | None = None
        self.aborted = False
        self.changed = threading.Condition()

    def read(self, n: int = -1) -> bytes:
        """``n`` bytes, fewer only at the end of the finished file (like a file's ``read``)."""
        if n < 0:
            parts = []
            while part := self.read(CHUNK):
                parts.append(part)
            return b"".join(parts)
        parts, wanted = [], n
        while wanted > 0:
            if self.aborted:
                raise _VerifyAborted
            final = self.final  # read before pread: once set, a pread sees every byte written
            data = os.pread(self.fd, wanted, self.pos)
            if data:
                self.pos += len(data)
                wanted -= len(data)
                parts.append(data)
                continue
            if final is not None:
                break
            with self.changed:
                if self.final is None and not self.aborted:
                    self.changed.wait(0.005)
        return b"".join(parts)

    def readable(self) -> bool:
        return True

    def end(self, *, size: int | None = None, aborted: bool = False) -> None:
        """The writer is done: the file is ``size`` bytes long, or reading back should stop."""
        with self.changed:
            if aborted:
                self.aborted = True
            else:
                self.final = size
            self.changed.notify_all()

    def close(self) -> None:
        os.close(self.fd)


class StoredFileVerifier:
    """Reads a backup back while it is being written and decodes it in full, on another core.

    ``finish(stats)`` then proves the file holds exactly the bytes the writer hashed (sha256 and
    size), and that they decode to as many bytes as were written with the format's own content
    checks intact (zstd frame checksum, gzip CRC, AES-GCM tags): the read-back check that makes a
    backup "verified", overlapped with compression instead of after it.
    """

    def __init__(self, path: os.PathLike[str] | str, *, compression: str, key: str | None, name: str) -> None:
        self.source = _GrowingFile(path)
        self.compression, self.key, self.name = compression, key, name
        self.error: BaseException | None = None
        self.reader: BackupReader | None = None
        self.raw_size = 0
        self.thread = threading.Thread(target=self._run, name="safemigrate-verify", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            reader = BackupReader(
                self.source,
                compression=self.compression,
                encrypted=bool(self.key),
                key=self.key,
                name=self.name,
            )
            while chunk := reader.read(CHUNK):
                self.raw_size += len(chunk)
            reader.check(None)  # hashes whatever trails the compressed stream too
            self.reader = reader
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            self.error = exc
        finally:
            self.source.close()

    def finish(self, stats: EncodedStats) -> None:
        """Wait for the read-back of the complete file; raises ChecksumMismatch if it differs."""
        self.source.end(size=stats.size)
        self.thread.join()
        if self.error is not None:
            if isinstance(self.error, SafeMigrateError):
                raise self.error
            raise ChecksumMismatch(
                f"{self.name} cannot be read back ({self.error}); nothing was changed"
            ) from self.error
        if self.reader is None:  # pragma: no cover - _run either sets it or an error
            raise ChecksumMismatch(f"{self.name} was not read back; nothing was changed")
        read = self.reader.source
        if read.size != stats.size or read.sha256.hexdigest() != stats.sha256:
            raise ChecksumMismatch(
                f"{self.name}: the file read back ({read.size:,} bytes) differs from what was "
                f"written ({stats.size:,} bytes); check the disk under SAFEMIGRATE_BACKUP_DIR"
            )
        if self.raw_size != stats.raw_size:
            raise ChecksumMismatch(f"{self.name}: decoded content does not match what was written")

    def abort(self) -> None:
        """Stop reading back (the write failed); never raises."""
        self.source.end(aborted=True)
        self.thread.join()


def verify_encoded_file(
    path: os.PathLike[str] | str,
    *,
    compression: str,
    encrypted: bool,
    key: str | None,
    name: str,
    sha256: str,
    raw_sha256: str = "",
) -> None:
    """Read a stored file back in full: its sha256 (and the decoded content's, if known) must match."""
    raw = hashlib.sha256()
    with open(path, "rb") as f:
        reader = BackupReader(f, compression=compression, encrypted=encrypted, key=key, name=name)
        while chunk := reader.read(CHUNK):
            raw.update(chunk)
        reader.check(sha256)
    if raw_sha256 and raw.hexdigest() != raw_sha256:
        raise ChecksumMismatch(f"{name}: decoded content does not match what was written")
