"""The encryption framing of backup files and the MAC of manifests, on their own for review.

An encrypted file is ``SMENC2`` + scrypt parameters (log2 N, r, p) + salt (16) + nonce prefix (8)
(``SMENC1``: PBKDF2, no parameters; still read), then AES-256-GCM chunks of at most ``CHUNK``
bytes of plaintext, each ``len(4) || ciphertext+tag``. The nonce is the prefix and the chunk's
number, and the associated data marks the last chunk, so reordering, truncation and a wrong key
are all detected.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import struct
from typing import Any

from safemigrate.constants import CHUNK
from safemigrate.exceptions import ChecksumMismatch, RestoreError, SafeMigrateError
from safemigrate.streams import ReadableStream

# cryptography is imported where used: every manage.py start imports this module.

ENC_MAGIC = b"SMENC2\n"
"""Version 2: scrypt with its parameters in the header. Version 1 (PBKDF2) files still decrypt."""
ENC_MAGIC_V1 = b"SMENC1\n"
SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P = 15, 8, 1
"""~32 MiB and ~0.1 s per file: a guess at the passphrase costs an attacker as much."""
_KDF_ITERATIONS = 200_000


class WrongKey(SafeMigrateError):
    """The backup is encrypted with another key (or none was given)."""


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


class Encryptor:
    """Buffers plaintext into CHUNK-sized chunks and writes them sealed with AES-256-GCM."""

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


class Decryptor:
    """The reading side of ``Encryptor``: a wrong key, reordering or truncation raises."""

    def __init__(self, source: ReadableStream, passphrase: str | None, name: str) -> None:
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
