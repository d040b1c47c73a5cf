"""django-q2 tasks: plain functions with primitive arguments that call the library."""

from __future__ import annotations

import logging
from typing import Any

from safemigrate.conf import get_settings

logger = logging.getLogger("safemigrate")


def rotate_backups(alias: str = "default") -> dict[str, Any]:
    """Rotation after a migration (or on demand): keep SAFEMIGRATE_KEEP backups."""
    from safemigrate.rotation import rotate_backups as rotate

    result = rotate(alias=alias)
    return {"alias": alias, "deleted": result.deleted, "kept": len(result.kept)}


def queue_after_migrate(alias: str) -> None:
    """Queue rotation (and a JSON dump if configured) after a successful safemigrate."""
    from django_q.tasks import async_task

    async_task("safemigrate.tasks.rotate_backups", alias, group="safemigrate")
    if get_settings().json_after_migrate:
        async_task("safemigrate.tasks.dump_json", alias, group="safemigrate")
