"""Project-level views: the landing page."""

from __future__ import annotations

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse
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


@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    """The container HEALTHCHECK: 200 when the app serves and its database answers, else 503."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return HttpResponse("database unavailable\n", status=503, content_type="text/plain")
    return HttpResponse("ok\n", content_type="text/plain")
