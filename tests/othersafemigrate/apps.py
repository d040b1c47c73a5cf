from __future__ import annotations

from django.apps import AppConfig


class OtherSafemigrateConfig(AppConfig):
    """A second app with a ``safemigrate`` command, like django-safemigrate (``django_safemigrate``)."""

    name = "tests.othersafemigrate"
    label = "othersafemigrate"
