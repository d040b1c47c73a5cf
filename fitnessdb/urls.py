"""URL configuration for fitnessdb."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path

from fitnessdb import views

urlpatterns = [
    path("", views.home, name="home"),
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
]
