"""A small JSON status file in the backup folder: what happened that the files alone do not show.

It holds each notification channel's last outcome and the backups that failed verification, for
the health signal (system checks, admin banner, health endpoint). Lives beside the backups, like
the manifests, so it survives a restore of the database; replaced atomically; a failure to read
it is an empty status, a failure to write it is logged, never raised.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings

from safemigrate.conf import backup_dir_for
from safemigrate.files import atomic_write

logger = logging.getLogger("safemigrate")

STATUS_FILE = ".safemigrate-status.json"


def _path(alias: str) -> Any:
    return backup_dir_for(alias if alias in settings.DATABASES else "default") / STATUS_FILE


def read_status(alias: str = "default") -> dict[str, Any]:
    try:
        data = json.loads(_path(alias).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def update_status(alias: str, key: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``change`` to the dict under ``key`` and write the file back atomically."""
    path = _path(alias)
    status = read_status(alias)
    section = status.get(key)
    if not isinstance(section, dict):
        section = status[key] = {}
    change(section)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, json.dumps(status, indent=2, sort_keys=True).encode())
    except OSError as exc:
        logger.error("cannot write the safemigrate status file %s: %s", path, exc)
