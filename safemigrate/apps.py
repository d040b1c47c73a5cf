"""App configuration: registers the system checks."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SafeMigrateConfig(AppConfig):
    name = "safemigrate"
    verbose_name = _("Safe migrations and backups")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from safemigrate import checks  # noqa: F401 - registers the checks
