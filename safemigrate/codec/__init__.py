"""Streaming encode/decode of backup files, in three parts that can be reviewed on their own:

- ``compression``: the writer and reader pipelines (compression, checksums, the format of a file);
- ``encryption``: the AES-256-GCM framing of encrypted files and the MAC of manifests;
- ``readback``: reading a stored file back in full, the check that makes a backup "verified".

The names below are what the rest of safemigrate imports from ``safemigrate.codec``.
"""

from __future__ import annotations

from safemigrate.codec.compression import (
    EXTENSIONS,
    GZIP_MAGIC,
    ZSTD_MAGIC,
    BackupReader,
    BackupWriter,
    EncodedStats,
    detect_format,
    file_suffix,
)
from safemigrate.codec.encryption import ENC_MAGIC, ENC_MAGIC_V1, WrongKey, mac_key, mac_of
from safemigrate.codec.readback import StoredFileVerifier, verify_encoded_file
from safemigrate.constants import CHUNK
from safemigrate.files import file_sha256, fsync_dir

__all__ = [
    "CHUNK",
    "ENC_MAGIC",
    "ENC_MAGIC_V1",
    "EXTENSIONS",
    "GZIP_MAGIC",
    "ZSTD_MAGIC",
    "BackupReader",
    "BackupWriter",
    "EncodedStats",
    "StoredFileVerifier",
    "WrongKey",
    "detect_format",
    "file_sha256",
    "file_suffix",
    "fsync_dir",
    "mac_key",
    "mac_of",
    "verify_encoded_file",
]
