"""App configuration for the fitness tracker."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TrackerConfig(AppConfig):
    """The fitness domain app; its label ``tracker`` names its tables and constraints."""

    name = "fitnessdb.tracker"
    label = "tracker"
    verbose_name = _("Training log")
    default_auto_field = "django.db.models.BigAutoField"
