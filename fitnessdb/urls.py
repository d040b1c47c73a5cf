"""URL configuration for fitnessdb."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from fitnessdb import views

urlpatterns = [
    path("", views.home, name="home"),
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("healthz/backups", include("safemigrate.urls")),
    path("favicon.ico", views.favicon, name="favicon"),
]
