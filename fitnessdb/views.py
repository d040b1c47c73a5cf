"""Project-level views: the landing page."""

from __future__ import annotations

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from fitnessdb.tracker.services import get_dashboard


def home(request: HttpRequest) -> HttpResponse:
    """Landing page: row counts, the latest workouts and the way into the admin."""
    return render(request, "home.html", {"dashboard": get_dashboard(latest=5)})


@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    """The container HEALTHCHECK: 200 when the app serves and its database answers, else 503."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return HttpResponse("database unavailable\n", status=503, content_type="text/plain")
    return HttpResponse("ok\n", content_type="text/plain")
