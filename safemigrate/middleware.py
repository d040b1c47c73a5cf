"""The fence: while safemigrate migrates a database, unsafe HTTP methods wait outside.

A failed migration that must be undone by restoring the backup (MariaDB/MySQL, non-atomic plans)
would otherwise race the application's own writers; reads keep working. Plain backups, verification
and rotation take the same lock but do not fence: only a migration run does. Add it to MIDDLEWARE:
``"safemigrate.middleware.MigrationFenceMiddleware"``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import DatabaseError, connections
from django.http import HttpRequest, HttpResponse

from safemigrate.conf import get_settings
from safemigrate.exceptions import SafeMigrateError

logger = logging.getLogger("safemigrate")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class MigrationFenceMiddleware:
    """503 + Retry-After for POST/PUT/PATCH/DELETE while a migration (and its rollback) runs."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method not in SAFE_METHODS and self._fenced():
            retry = get_settings().fence_retry_after
            return HttpResponse(
                f"The database is being migrated; try again in {retry} seconds.\n",
                status=503,
                content_type="text/plain; charset=utf-8",
                headers={"Retry-After": str(retry)},
            )
        return self.get_response(request)

    def _fenced(self) -> bool:
        # Imported here: Django's admin checks import this class at every manage.py start.
        from safemigrate.lock import migration_in_progress

        for alias in connections:
            try:
                if migration_in_progress(alias=alias):
                    return True
            except SafeMigrateError:  # a vendor safemigrate does not guard: nothing to fence
                continue
            except DatabaseError as exc:  # being swapped, or down: a write could not land anyway
                logger.info("fence: cannot ask %s about the migration lock (%s); holding writes", alias, exc)
                return True
        return False
