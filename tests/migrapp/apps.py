from __future__ import annotations

import os
import time
from pathlib import Path

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def slow_post_migrate(**kwargs: object) -> None:
    """MIGRAPP_POST_MIGRATE_SLOW: a window after Django's last "OK", before the post-check."""
    marker = os.environ.get("MIGRAPP_SLOW_MARKER")
    if marker:
        Path(marker).touch()
    time.sleep(float(os.environ["MIGRAPP_POST_MIGRATE_SLOW"]))


class MigrappConfig(AppConfig):
    name = "tests.migrapp"
    label = "migrapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        if os.environ.get("MIGRAPP_POST_MIGRATE_SLOW"):
            post_migrate.connect(slow_post_migrate, sender=self)
