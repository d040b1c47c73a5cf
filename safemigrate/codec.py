"""Streaming encode/decode of backup files: compression, optional encryption, checksums.

Writing: raw bytes -> compressor (zstd on two threads, gzip or none) -> encryptor (optional) -> file,
hashing the raw stream and the stored bytes on the way. Reading undoes it in one pass, hashing the
stored bytes, so a restore can refuse a damaged file before anything is changed.

Encrypted files are ``SMENC2`` + scrypt parameters (log2 N, r, p) + salt + nonce prefix (``SMENC1``:
PBKDF2, no parameters; still read), then AES-256-GCM chunks of at most 1 MiB, each
``len(4) || ciphertext+tag``, the nonce counting chunks and the last chunk marked in the associated
data, so reordering, truncation and a wrong key are all detected.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import hmac
import json
import os
import struct
import threading
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, cast

from safemigrate.exceptions import ChecksumMismatch, RestoreError, SafeMigrateError
from safemigrate.streams import ReadableStream

# zstandard and cryptography are imported where used: every manage.py start imports this module
# (the no-op migrate at each container start must cost little more than Django's own).

CHUNK = 1 << 20
ENC_MAGIC = b"SMENC2\n"
"""Version 2: scrypt with its parameters in the header. Version 1 (PBKDF2) files still decrypt."""
ENC_MAGIC_V1 = b"SMENC1\n"
SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P = 15, 8, 1
"""~32 MiB and ~0.1 s per file: a guess at the passphrase costs an attacker as much."""
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
SQLITE_MAGIC = b"SQLite format 3\x00"
_KDF_ITERATIONS = 200_000
EXTENSIONS = {"zstd": ".zst", "gzip": ".gz", "none": ""}


class WrongKey(SafeMigrateError):
    """The backup is encrypted with another key (or none was given)."""


def file_suffix(compression: str, encrypted: bool) -> str:
    return EXTENSIONS[compression] + (".enc" if encrypted else "")


def _derive_key_v1(passphrase: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", passphrase.encode(), salt, _KDF_ITERATIONS, dklen=32)


def _derive_key(passphrase: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=2**log2_n, r=r, p=p).derive(passphrase.encode())


@functools.lru_cache(maxsize=4)
def mac_key(passphrase: str) -> bytes:
    """The key that authenticates manifests: scrypt of the passphrase (cached: ~50 ms each).

    A fixed salt is fine here: the key only needs to differ from the per-file encryption keys
    and to cost an attacker without the passphrase a scrypt per guess.
    """
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=b"safemigrate manifest mac v1", length=32, n=2**14, r=8, p=1).derive(
        passphrase.encode()
    )


def mac_of(data: dict[str, Any], passphrase: str) -> str:
    """HMAC-SHA256 of ``data`` in canonical JSON (sorted keys, no spaces)."""
    payload = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return "hmac-sha256:" + hmac.new(mac_key(passphrase), payload, hashlib.sha256).hexdigest()


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
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        salt, self.prefix = os.urandom(16), os.urandom(8)
        params = (SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P)
        self.aead = AESGCM(_derive_key(passphrase, salt, *params))
        self.sink = sink
        self.buffer = bytearray()
        self.counter = 0
        sink.write(ENC_MAGIC + bytes(params) + salt + self.prefix)

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
        self.encryptor = _Encryptor(self.sink, key) if key else None
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


class _HashingSource:
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


class _Decryptor:
    """The reading side of ``_Encryptor``: a wrong key, reordering or truncation raises."""

    def __init__(self, source: _HashingSource, passphrase: str | None, name: str) -> None:
        self.source, self.name = source, name
        magic = source.read(len(ENC_MAGIC))
        params = source.read(3) if magic == ENC_MAGIC else b""
        header = source.read(24)
        if magic not in (ENC_MAGIC, ENC_MAGIC_V1) or len(header) < 24 or len(params) not in (0, 3):
            raise RestoreError(f"{name} is not a safemigrate encrypted backup")
        if params and not (14 <= params[0] <= 17 and 1 <= params[1] <= 8 and params[2] == 1):
            # Bounded: a crafted header must not make us spend gigabytes deriving a key.
            raise RestoreError(f"{name} is not a safemigrate encrypted backup (key derivation parameters)")
        if not passphrase:
            raise WrongKey(f"{name} is encrypted; set SAFEMIGRATE_ENCRYPTION_KEY to the key it was made with")
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        salt, self.prefix = header[:16], header[16:]
        key = _derive_key(passphrase, salt, *params) if params else _derive_key_v1(passphrase, salt)
        self.aead = AESGCM(key)
        self.counter = 0
        self.buffer = b""
        self.done = False

    def _next_chunk(self) -> bytes:
        from cryptography.exceptions import InvalidTag

        head = self.source.read(4)
        if len(head) < 4:
            raise ChecksumMismatch(f"{self.name} is truncated (encrypted stream ends early)")
        (length,) = struct.unpack(">I", head)
        if length > CHUNK + 16:  # a chunk and its tag: a larger length is damage or an attack
            raise ChecksumMismatch(f"{self.name} is damaged (encrypted chunk {self.counter} is too long)")
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
    if head.startswith((ENC_MAGIC, ENC_MAGIC_V1)):
        return "unknown", True
    if head.startswith(ZSTD_MAGIC):
        return "zstd", False
    if head.startswith(GZIP_MAGIC):
        return "gzip", False
    return "none", False


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
        self.source = _HashingSource(fileobj)
        inner: Any = _Decryptor(self.source, key, name) if encrypted else self.source
        self.inner, self.compression, self.started = inner, compression, False
        self.stream: Any
        if compression == "zstd":
            import zstandard

            self.stream = zstandard.ZstdDecompressor().stream_reader(inner, read_size=CHUNK)
        elif compression == "gzip":
            self.stream = gzip.GzipFile(fileobj=inner, mode="rb")
        elif compression == "none":
            self.stream = inner
        else:
            raise RestoreError(f"{name}: unknown compression {compression!r} in its manifest")

    def read(self, n: int = -1) -> bytes:
        import zstandard

        self.started = True
        try:
            data: bytes = self.stream.read(n)
        except (zstandard.ZstdError, OSError, EOFError) as exc:
            if isinstance(exc, SafeMigrateError):
                raise
            raise ChecksumMismatch(f"{self.name} is damaged or truncated ({exc})") from exc
        self._count(len(data))
        return data

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
            return int(written)
        written = 0
        while chunk := self.read(CHUNK):
            out.write(chunk)
            written += len(chunk)
        return written

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


def fsync_dir(path: os.PathLike[str] | str) -> None:
    """Make a rename in ``path`` durable (a crash after it keeps the new name)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
