"""Streaming encode/decode of backup files: compression, optional encryption, checksums.

Writing: raw bytes -> compressor (zstd on two threads, gzip or none) -> encryptor (optional) -> file,
hashing the raw stream and the stored bytes on the way. Reading undoes it in one pass, hashing the
stored bytes, so a restore can refuse a damaged file before anything is changed.

Encrypted files are ``SMENC1`` + salt + nonce prefix, then AES-256-GCM chunks of at most 1 MiB, each
``len(4) || ciphertext+tag``, the nonce counting chunks and the last chunk marked in the associated
data, so reordering, truncation and a wrong key are all detected.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from dataclasses import dataclass
from typing import IO, Any, BinaryIO

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from safemigrate.exceptions import ChecksumMismatch, RestoreError, SafeMigrateError

CHUNK = 1 << 20
ENC_MAGIC = b"SMENC1\n"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
SQLITE_MAGIC = b"SQLite format 3\x00"
_KDF_ITERATIONS = 200_000
EXTENSIONS = {"zstd": ".zst", "gzip": ".gz", "none": ""}


class WrongKey(SafeMigrateError):
    """The backup is encrypted with another key (or none was given)."""


def file_suffix(compression: str, encrypted: bool) -> str:
    return EXTENSIONS[compression] + (".enc" if encrypted else "")


def _derive_key(passphrase: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", passphrase.encode(), salt, _KDF_ITERATIONS, dklen=32)


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


class _Encryptor:
    """Buffers plaintext into 1 MiB chunks and writes them sealed with AES-256-GCM."""

    def __init__(self, sink: Any, passphrase: str) -> None:
        salt, self.prefix = os.urandom(16), os.urandom(8)
        self.aead = AESGCM(_derive_key(passphrase, salt))
        self.sink = sink
        self.buffer = bytearray()
        self.counter = 0
        sink.write(ENC_MAGIC + salt + self.prefix)

    def _seal(self, data: bytes, last: bool) -> None:
        nonce = self.prefix + struct.pack(">I", self.counter)
        self.counter += 1
        sealed = self.aead.encrypt(nonce, data, b"\x01" if last else b"\x00")
        self.sink.write(struct.pack(">I", len(sealed)) + sealed)

    def write(self, data: bytes | memoryview) -> int:
        self.buffer += data
        while len(self.buffer) > CHUNK:
            self._seal(bytes(self.buffer[:CHUNK]), last=False)
            del self.buffer[:CHUNK]
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._seal(bytes(self.buffer), last=True)
        self.buffer.clear()


@dataclass(frozen=True)
class EncodedStats:
    size: int
    sha256: str
    raw_size: int
    raw_sha256: str


class BackupWriter:
    """A writable stream that encodes into ``fileobj``; ``finish()`` flushes, fsyncs and reports."""

    def __init__(
        self, fileobj: BinaryIO, *, compression: str, level: int = 1, key: str | None = None
    ) -> None:
        self.fileobj = fileobj
        self.sink = _HashingSink(fileobj)
        self.encryptor = _Encryptor(self.sink, key) if key else None
        target: Any = self.encryptor or self.sink
        self.raw_sha256 = hashlib.sha256()
        self.raw_size = 0
        self.compressor: Any
        if compression == "zstd":
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
                self.compressor.flush(zstandard.FLUSH_FRAME)
        if self.encryptor is not None:
            self.encryptor.close()
        self.fileobj.flush()
        os.fsync(self.fileobj.fileno())
        return EncodedStats(
            size=self.sink.size,
            sha256=self.sink.sha256.hexdigest(),
            raw_size=self.raw_size,
            raw_sha256=self.raw_sha256.hexdigest(),
        )


class _HashingSource:
    """Reads the stored bytes, hashing them, so a reader can check the file as it decodes."""

    def __init__(self, fileobj: IO[bytes]) -> None:
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


class _Decryptor:
    """The reading side of ``_Encryptor``: a wrong key, reordering or truncation raises."""

    def __init__(self, source: _HashingSource, passphrase: str | None, name: str) -> None:
        self.source, self.name = source, name
        header = source.read(len(ENC_MAGIC) + 24)
        if not header.startswith(ENC_MAGIC) or len(header) < len(ENC_MAGIC) + 24:
            raise RestoreError(f"{name} is not a safemigrate encrypted backup")
        if not passphrase:
            raise WrongKey(
                f"{name} is encrypted; set SAFEMIGRATE_ENCRYPTION_KEY to the key it was made with"
            )
        salt, self.prefix = header[len(ENC_MAGIC) : -8], header[-8:]
        self.aead = AESGCM(_derive_key(passphrase, salt))
        self.counter = 0
        self.buffer = b""
        self.done = False

    def _next_chunk(self) -> bytes:
        head = self.source.read(4)
        if len(head) < 4:
            raise ChecksumMismatch(f"{self.name} is truncated (encrypted stream ends early)")
        (length,) = struct.unpack(">I", head)
        sealed = self.source.read(length)
        if len(sealed) < length:
            raise ChecksumMismatch(f"{self.name} is truncated (encrypted stream ends early)")
        nonce = self.prefix + struct.pack(">I", self.counter)
        for last in (False, True):
            try:
                data = self.aead.decrypt(nonce, sealed, b"\x01" if last else b"\x00")
            except InvalidTag:
                continue
            self.counter += 1
            self.done = last
            return data
        if self.counter == 0:
            raise WrongKey(
                f"cannot decrypt {self.name}: wrong SAFEMIGRATE_ENCRYPTION_KEY "
                "(use the key the backup was made with)"
            )
        raise ChecksumMismatch(f"{self.name} is damaged (encrypted chunk {self.counter} fails)")

    def read(self, n: int = -1) -> bytes:
        while not self.done and (n < 0 or len(self.buffer) < n):
            self.buffer += self._next_chunk()
        if n < 0:
            data, self.buffer = self.buffer, b""
        else:
            data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def readable(self) -> bool:
        return True


def detect_format(path: os.PathLike[str] | str) -> tuple[str, bool]:
    """(compression, encrypted) from the file's first bytes; raises for a file that is no backup."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(ENC_MAGIC):
        return "unknown", True
    if head.startswith(ZSTD_MAGIC):
        return "zstd", False
    if head.startswith(GZIP_MAGIC):
        return "gzip", False
    return "none", False


class BackupReader:
    """Decodes a stored backup as a readable stream; ``check(sha256)`` after reading it all."""

    def __init__(
        self, fileobj: IO[bytes], *, compression: str, encrypted: bool, key: str | None, name: str
    ) -> None:
        self.name = name
        self.source = _HashingSource(fileobj)
        inner: Any = _Decryptor(self.source, key, name) if encrypted else self.source
        self.stream: Any
        if compression == "zstd":
            self.stream = zstandard.ZstdDecompressor().stream_reader(inner, read_size=CHUNK)
        elif compression == "gzip":
            self.stream = gzip.GzipFile(fileobj=inner, mode="rb")
        elif compression == "none":
            self.stream = inner
        else:
            raise RestoreError(f"{name}: unknown compression {compression!r} in its manifest")

    def read(self, n: int = -1) -> bytes:
        try:
            return self.stream.read(n)
        except (zstandard.ZstdError, OSError, EOFError) as exc:
            if isinstance(exc, SafeMigrateError):
                raise
            raise ChecksumMismatch(f"{self.name} is damaged or truncated ({exc})") from exc

    def drain(self) -> None:
        """Read to the end (verifying compression checksums) and discard the output."""
        while self.read(CHUNK):
            pass
        # Hash whatever trails the compressed frame too, so the checksum covers the whole file.
        while self.source.read(CHUNK):
            pass

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


def file_sha256(path: os.PathLike[str] | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
