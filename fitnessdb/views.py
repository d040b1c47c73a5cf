"""Project-level views: the landing page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from fitnessdb.tracker.services import get_dashboard


def home(request: HttpRequest) -> HttpResponse:
    """Landing page: row counts, the latest workouts and the way into the admin."""
    return render(request, "home.html", {"dashboard": get_dashboard(latest=5)})
