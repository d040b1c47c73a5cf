"""Project-level views: the landing page, the site icon and the health probe."""

from __future__ import annotations

import time

from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_control, never_cache

from fitnessdb.tracker.services import get_dashboard


def home(request: HttpRequest) -> HttpResponse:
    """Landing page: row counts, the latest workouts and the way into the admin."""
    return render(request, "home.html", {"dashboard": get_dashboard(latest=5)})


# A dumbbell on the accent colour: browsers ask for /favicon.ico on every page.
_FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<rect width="32" height="32" rx="7" fill="#2f6fdf"/>'
    '<path fill="#fff" d="M5 11h4v10H5zM9 13h3v6H9zM12 15h8v2h-8zM20 13h3v6h-3zM23 11h4v10h-4z"/></svg>'
)


@cache_control(max_age=86400, public=True)
def favicon(request: HttpRequest) -> HttpResponse:
    """The site icon, for every page's <link rel=icon> and for browsers that ask /favicon.ico."""
    return HttpResponse(_FAVICON, content_type="image/svg+xml")


HEALTHZ_CACHE_SECONDS = 5.0
"""How long one answer stands: a probe every few seconds costs one migration plan, not one each."""
_healthz: tuple[float, int, dict[str, str]] | None = None  # (when, status, body) of the last answer


def _health() -> tuple[int, dict[str, str]]:
    """200, or 503 with the reason: the database does not answer, or migrations on disk are not
    applied to it (a backup older than the code restored: pages would fail on missing columns)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError:
        return 503, {"status": "error", "reason": "database unavailable"}
    if plan:
        names = [f"{m.app_label}.{m.name}" for m, _ in plan]
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        reason = f"{len(names)} unapplied migration(s): {shown}; run manage.py safemigrate"
        return 503, {"status": "error", "reason": reason}
    return 200, {"status": "ok"}


@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    """The project's probe: 200 when the app serves, its database answers and every migration on
    disk is applied to it, else 503 with a one-line reason (JSON); one answer stands a few seconds."""
    global _healthz
    now = time.monotonic()
    if _healthz is None or now - _healthz[0] >= HEALTHZ_CACHE_SECONDS:
        _healthz = (now, *_health())
    _, status, body = _healthz
    return JsonResponse(body, status=status)
