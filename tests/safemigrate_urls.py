"""URLs for tests.safemigrate_settings: the admin and the health endpoint, as the README says."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz/backups", include("safemigrate.urls")),
]
