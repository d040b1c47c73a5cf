"""Streaming encode/decode of backup files: compression, optional encryption, checksums.

Writing: raw bytes -> compressor (zstd on two threads, gzip or none) -> encryptor (optional) -> file,
hashing the stored bytes on the way (and the raw stream, unless told not to). Reading undoes it in
one pass, hashing the stored bytes, so a restore can refuse a damaged file before anything changes.
A zstd stream must end with its frame complete: python-zstandard decodes a truncated frame short
without an error, so ``ZstdFrameEnd`` follows the frame's block headers to know where it ends.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, cast

from safemigrate.codec.encryption import ENC_MAGIC, ENC_MAGIC_V1, Decryptor, Encryptor
from safemigrate.constants import CHUNK, COMPRESSION_EXTENSIONS, ENCRYPTED_EXTENSION
from safemigrate.exceptions import ChecksumMismatch, RestoreError, SafeMigrateError
from safemigrate.streams import ReadableStream

# zstandard is imported where used: every manage.py start imports this module (the no-op migrate
# at each container start must cost little more than Django's own).

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
EXTENSIONS = COMPRESSION_EXTENSIONS


def file_suffix(compression: str, encrypted: bool) -> str:
    return EXTENSIONS[compression] + (ENCRYPTED_EXTENSION if encrypted else "")


def detect_format(path: os.PathLike[str] | str) -> tuple[str, bool]:
    """(compression, encrypted) from the file's first bytes; raises for a file that is no backup."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith((ENC_MAGIC, ENC_MAGIC_V1)):
        return "unknown", True
    if head.startswith(ZSTD_MAGIC):
        return "zstd", False
    if head.startswith(GZIP_MAGIC):
        return "gzip", False
    return "none", False


class _HashingSink:
    """The last stage of the writer: counts, hashes and writes the stored bytes."""

    def __init__(self, fileobj: BinaryIO) -> None:
        self.fileobj = fileobj
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        self.sha256.update(data)
        self.size += len(data)
        self.fileobj.write(data)
        return len(data)

    def flush(self) -> None:
        self.fileobj.flush()


@dataclass(frozen=True)
class EncodedStats:
    size: int
    sha256: str
    raw_size: int
    raw_sha256: str


class BackupWriter:
    """A writable stream that encodes into ``fileobj``; ``finish()`` flushes, fsyncs and reports."""

    def __init__(
        self,
        fileobj: BinaryIO,
        *,
        compression: str,
        level: int = 1,
        key: str | None = None,
        hash_raw: bool = True,
    ) -> None:
        """``hash_raw=False`` skips the sha256 of the raw stream (``raw_sha256`` is then empty):
        zstd's frame checksum and gzip's CRC already let a reader prove the decoded content."""
        self.fileobj = fileobj
        self.sink = _HashingSink(fileobj)
        self.encryptor = Encryptor(self.sink, key) if key else None
        target: Any = self.encryptor or self.sink
        self.raw_sha256: Any = hashlib.sha256() if hash_raw else None
        self.raw_size = 0
        self.compressor: Any
        if compression == "zstd":
            import zstandard

            cctx = zstandard.ZstdCompressor(level=level, threads=2, write_checksum=True)
            self.compressor = cctx.stream_writer(target, closefd=False)
        elif compression == "gzip":
            self.compressor = gzip.GzipFile(fileobj=target, mode="wb", compresslevel=6, mtime=0)
        elif compression == "none":
            self.compressor = None
        else:
            raise SafeMigrateError(
                f"unknown compression {compression!r}; set SAFEMIGRATE_COMPRESS to zstd, gzip or none"
            )
        self.target = target

    def write(self, data: bytes | memoryview) -> int:
        if self.raw_sha256 is not None:
            self.raw_sha256.update(data)
        self.raw_size += len(data)
        if self.compressor is None:
            self.target.write(data)
        else:
            self.compressor.write(data)
        return len(data)

    def finish(self) -> EncodedStats:
        if self.compressor is not None:
            if isinstance(self.compressor, gzip.GzipFile):
                self.compressor.close()
            else:
                import zstandard

                self.compressor.flush(zstandard.FLUSH_FRAME)
        if self.encryptor is not None:
            self.encryptor.close()
        self.fileobj.flush()
        os.fsync(self.fileobj.fileno())
        return EncodedStats(
            size=self.sink.size,
            sha256=self.sink.sha256.hexdigest(),
            raw_size=self.raw_size,
            raw_sha256=self.raw_sha256.hexdigest() if self.raw_sha256 is not None else "",
        )


class HashingSource:
    """Reads the stored bytes, hashing them, so a reader can check the file as it decodes."""

    def __init__(self, fileobj: ReadableStream) -> None:
        self.fileobj = fileobj
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self.fileobj.read(n)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def readable(self) -> bool:
        return True


_SKIPPABLE_MASK, _SKIPPABLE = 0xFFFFFFF0, 0x184D2A50
_DICT_ID_SIZES = (0, 1, 2, 4)
_CONTENT_SIZE_SIZES = (0, 2, 4, 8)


class ZstdFrameEnd:
    """Reads the compressed stream for the decoder and follows its first frame's structure (header,
    block headers, checksum), so that a stream cut short is known as such: ``complete``."""

    def __init__(self, source: ReadableStream) -> None:
        self.source = source
        self.pending = bytearray()  # a header read in part
        self.skip = 0  # bytes of block content (and the checksum) still to pass over
        self.want = "frame"  # then "block" until the last block, then "done"
        self.checksum = 0

    @property
    def complete(self) -> bool:
        return self.want == "done" and not self.skip

    def read(self, n: int = -1) -> bytes:
        data = self.source.read(n)
        pos, end = 0, len(data)
        while pos < end and (self.skip or self.want != "done"):
            if self.skip:
                step = min(self.skip, end - pos)
                self.skip -= step
                pos += step
                continue
            need = self._header_size()
            take = min(need - len(self.pending), end - pos)
            self.pending += data[pos : pos + take]
            pos += take
            if len(self.pending) == self._header_size():
                self._header_read()
        return data

    def readable(self) -> bool:
        return True

    def _header_size(self) -> int:
        head = self.pending
        if self.want == "block":
            return 3
        if len(head) < 5:
            return 5
        if int.from_bytes(head[:4], "little") & _SKIPPABLE_MASK == _SKIPPABLE:
            return 8
        fhd = head[4]
        single_segment = bool(fhd & 0x20)
        content_size = _CONTENT_SIZE_SIZES[fhd >> 6] or (1 if single_segment else 0)
        return 5 + (0 if single_segment else 1) + _DICT_ID_SIZES[fhd & 3] + content_size

    def _header_read(self) -> None:
        head, self.pending = bytes(self.pending), bytearray()
        if self.want == "block":
            value = int.from_bytes(head, "little")
            last, kind, size = value & 1, (value >> 1) & 3, value >> 3
            self.skip = 1 if kind == 1 else size  # an RLE block holds one byte
            if last:
                self.skip += self.checksum
                self.want = "done"
        elif int.from_bytes(head[:4], "little") & _SKIPPABLE_MASK == _SKIPPABLE:
            self.skip = int.from_bytes(head[4:8], "little")
        elif head[:4] == ZSTD_MAGIC:
            self.checksum = 4 if head[4] & 0x04 else 0
            self.want = "block"
        else:
            self.want = "done"  # not zstd: the decoder says so


class _CountingWriter:
    """Passes writes on to ``out`` after ``count`` (which raises past a limit)."""

    def __init__(self, out: Any, count: Any) -> None:
        self.out, self.count = out, count

    def write(self, data: bytes) -> int:
        self.count(len(data))
        self.out.write(data)
        return len(data)

    def flush(self) -> None:
        flush = getattr(self.out, "flush", None)
        if flush is not None:
            flush()


class BackupReader:
    """Decodes a stored backup as a readable stream; ``check(sha256)`` after reading it all."""

    def __init__(
        self,
        fileobj: ReadableStream,
        *,
        compression: str,
        encrypted: bool,
        key: str | None,
        name: str,
        limit: int | None = None,
    ) -> None:
        """``limit``: decoded bytes beyond it are damage (a decompression bomb), not data."""
        self.name, self.limit, self.decoded = name, limit, 0
        self.source = HashingSource(fileobj)
        inner: Any = Decryptor(self.source, key, name) if encrypted else self.source
        self.frame: ZstdFrameEnd | None = None
        self.compression, self.started = compression, False
        self.stream: Any
        if compression == "zstd":
            import zstandard

            inner = self.frame = ZstdFrameEnd(inner)
            self.stream = zstandard.ZstdDecompressor().stream_reader(inner, read_size=CHUNK)
        elif compression == "gzip":
            self.stream = gzip.GzipFile(fileobj=inner, mode="rb")
        elif compression == "none":
            self.stream = inner
        else:
            raise RestoreError(f"{name}: unknown compression {compression!r} in its manifest")
        self.inner = inner

    def read(self, n: int = -1) -> bytes:
        import zstandard

        self.started = True
        try:
            data: bytes = self.stream.read(n)
        except (zstandard.ZstdError, OSError, EOFError) as exc:
            if isinstance(exc, SafeMigrateError):
                raise
            raise ChecksumMismatch(f"{self.name} is damaged or truncated ({exc})") from exc
        if n < 0 or (not data and n != 0):  # the end of the decoded stream
            self._check_frame_end()
        self._count(len(data))
        return data

    def _check_frame_end(self) -> None:
        if self.frame is not None and not self.frame.complete:
            raise ChecksumMismatch(
                f"{self.name} is damaged or truncated (its compressed stream ends early); it was not used"
            )

    def _count(self, n: int) -> None:
        self.decoded += n
        if self.limit is not None and self.decoded > self.limit:
            raise ChecksumMismatch(
                f"{self.name} decodes to more than the {self.limit:,} bytes it may hold: it is "
                "damaged or crafted; it was not used"
            )

    def copy_to(self, out: Any) -> int:
        """Decode everything into ``out`` (anything with ``write``); returns the bytes written.

        For zstd, one C loop over one buffer (python-zstandard's ``copy_stream``): writing a
        large file that way is markedly faster than ``read()`` in a Python loop. A write error
        (disk full) is raised as the OSError it is.
        """
        if self.compression == "zstd" and not self.started:
            import zstandard

            self.started = True
            try:
                sink = cast("IO[bytes]", _CountingWriter(out, self._count))  # only write() is used
                _, written = zstandard.ZstdDecompressor().copy_stream(
                    self.inner, sink, read_size=CHUNK, write_size=CHUNK
                )
            except zstandard.ZstdError as exc:
                raise ChecksumMismatch(f"{self.name} is damaged or truncated ({exc})") from exc
            self._check_frame_end()
            return int(written)
        written = 0
        while chunk := self.read(CHUNK):
            out.write(chunk)
            written += len(chunk)
        return written

    def check(self, expected_sha256: str | None) -> None:
        while self.source.read(CHUNK):
            pass
        actual = self.source.sha256.hexdigest()
        if expected_sha256 and actual != expected_sha256:
            raise ChecksumMismatch(
                f"checksum mismatch for {self.name}: the file is damaged "
                f"(sha256 {actual[:12]}…, manifest says {expected_sha256[:12]}…); "
                "restore another backup (restore --list)"
            )
