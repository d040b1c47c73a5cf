"""Portable JSON dumps: every installed model out in Django's serialization format, and back in.

The file is the JSON array that ``loaddata`` reads, written one object per line, which lets the
import stream it back line by line. Natural keys follow ``dumpdata --natural-foreign``: a reference
to a model that defines ``natural_key()`` is written as that key. ``contenttypes.contenttype`` and
``auth.permission``, whose rows ``migrate`` creates in every database with its own ids, also use
natural primary keys (``--natural-primary``) and are merged on import; every other model keeps its
primary keys.

The package, top to bottom: ``selection`` (which models and fields), ``format`` (the file, its
header and end records, the sidecar manifest), ``columns`` (one value codec for both directions),
``export`` (``create_json_dump``) and ``load`` (``load_json_dump``).
"""

from __future__ import annotations

from safemigrate.constants import DUMP_MANIFEST_SUFFIX
from safemigrate.jsondump.export import CHUNK_SIZE, create_json_dump
from safemigrate.jsondump.format import (
    CARRIER_KEY,
    FORMAT,
    FORMAT_VERSION,
    JsonDumpResult,
    dump_manifest_path,
    read_dump_manifest,
)
from safemigrate.jsondump.load import JsonLoadResult, load_json_dump
from safemigrate.jsondump.selection import EXCLUDED_APPS, NATURAL_PRIMARY, dumped_models

__all__ = [
    "CARRIER_KEY",
    "CHUNK_SIZE",
    "DUMP_MANIFEST_SUFFIX",
    "EXCLUDED_APPS",
    "FORMAT",
    "FORMAT_VERSION",
    "NATURAL_PRIMARY",
    "JsonDumpResult",
    "JsonLoadResult",
    "create_json_dump",
    "dump_manifest_path",
    "dumped_models",
    "load_json_dump",
    "read_dump_manifest",
]
