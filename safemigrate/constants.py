"""Names and sizes every module shares: the file suffixes safemigrate writes and its I/O chunk."""

from __future__ import annotations

CHUNK = 1 << 20
"""Bytes read or written at a time when streaming a file (and the size of an encrypted chunk)."""
MANIFEST_SUFFIX = ".manifest.json"
"""``<backup file>.manifest.json``: a backup's sidecar manifest."""
DUMP_MANIFEST_SUFFIX = ".dump-manifest.json"
"""``<dump file>.dump-manifest.json``: a JSON dump's sidecar manifest."""
PARTIAL_SUFFIX = ".partial"
"""``.<name>.partial``: a file while it is written, renamed once it is complete and verified."""
MAX_MANIFEST_BYTES = 4 << 20
"""A manifest is a few KB; anything larger is not ours (and is not read whole into memory)."""
COMPRESSION_EXTENSIONS = {"zstd": ".zst", "gzip": ".gz", "none": ""}
ENCRYPTED_EXTENSION = ".enc"
