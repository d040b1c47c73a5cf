"""The health endpoint for uptime monitors: JSON, 200 when healthy, 503 when not, no login."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe


@never_cache
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    """safemigrate.health.health_report() for every database (no secrets, no row counts)."""
    from safemigrate.health import health_report  # not at start-up: the URL checks import this

    report = health_report()
    return JsonResponse(report, status=200 if report["healthy"] else 503)
