"""Include in a project's URLconf, e.g. ``path("healthz/backups", include("safemigrate.urls"))``."""

from __future__ import annotations

from django.urls import path

from safemigrate import views

app_name = "safemigrate"
urlpatterns = [path("", views.health, name="health")]
