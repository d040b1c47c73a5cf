"""Encryption framing against crafted files, and the old (version 1) header still decrypting."""

from __future__ import annotations

import hashlib
import io
import os
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from safemigrate.codec import ENC_MAGIC, BackupReader, BackupWriter
from safemigrate.exceptions import ChecksumMismatch, RestoreError

KEY = "a long correct horse battery staple"


def read_all(data: bytes, *, key: str = KEY) -> bytes:
    reader = BackupReader(io.BytesIO(data), compression="none", encrypted=True, key=key, name="f")
    return reader.read()


def test_version_1_pbkdf2_files_still_decrypt():
    salt, prefix = os.urandom(16), os.urandom(8)
    key = hashlib.pbkdf2_hmac("sha256", KEY.encode(), salt, 200_000, dklen=32)
    sealed = AESGCM(key).encrypt(prefix + struct.pack(">I", 0), b"old data", b"\x01")
    data = b"SMENC1\n" + salt + prefix + struct.pack(">I", len(sealed)) + sealed
    assert read_all(data) == b"old data"


def test_new_files_use_scrypt_with_parameters_in_the_header(tmp_path):
    with (tmp_path / "f").open("wb") as out:
        writer = BackupWriter(out, compression="none", key=KEY)
        writer.write(b"new data")
        writer.finish()
    data = (tmp_path / "f").read_bytes()
    assert data.startswith(ENC_MAGIC + bytes([15, 8, 1]))
    assert read_all(data) == b"new data"


def test_a_chunk_length_beyond_the_chunk_size_is_damage_not_a_memory_error():
    data = ENC_MAGIC + bytes([15, 8, 1]) + os.urandom(24) + b"\xff\xff\xff\xff"
    with pytest.raises(ChecksumMismatch, match="too long"):
        read_all(data)


def test_a_header_asking_for_a_huge_key_derivation_is_refused():
    data = ENC_MAGIC + bytes([40, 255, 1]) + os.urandom(24)
    with pytest.raises(RestoreError, match="key derivation parameters"):
        read_all(data)


def zstd_file(tmp_path, data: bytes) -> bytes:
    with (tmp_path / "z").open("wb") as out:
        writer = BackupWriter(out, compression="zstd")
        writer.write(data)
        writer.finish()
    return (tmp_path / "z").read_bytes()


def decode_zstd(data: bytes, *, copy: bool) -> bytes:
    reader = BackupReader(io.BytesIO(data), compression="zstd", encrypted=False, key=None, name="f")
    if copy:
        out = io.BytesIO()
        reader.copy_to(out)
        return out.getvalue()
    parts = []
    while chunk := reader.read(1 << 16):
        parts.append(chunk)
    return b"".join(parts)


@pytest.mark.parametrize("copy", [False, True], ids=["read", "copy_to"])
def test_a_truncated_zstd_stream_is_damage_not_a_short_file(tmp_path, copy):
    """python-zstandard decodes a cut frame short without an error: the reader must not."""
    raw = b"".join(os.urandom(64) * 50 for _ in range(3000))
    data = zstd_file(tmp_path, raw)
    assert decode_zstd(data, copy=copy) == raw
    for cut in (1, 2, 4, 5, len(data) // 2, len(data) - 8):
        with pytest.raises(ChecksumMismatch, match="truncated"):
            decode_zstd(data[:-cut], copy=copy)


def test_zstd_frames_written_by_other_code_still_read():
    """Older backups and other tools' frames: with or without content size and checksum, and a
    skippable frame first."""
    raw = os.urandom(300_000) * 3
    for params in ({"write_checksum": False}, {"write_content_size": False}, {}):
        import zstandard

        frame = zstandard.ZstdCompressor(**params).compress(raw)
        assert decode_zstd(frame, copy=False) == raw
        skippable = struct.pack("<II", 0x184D2A50, 3) + b"abc"
        assert decode_zstd(skippable + frame, copy=True) == raw
