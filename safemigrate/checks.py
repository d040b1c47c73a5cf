"""System checks (IDs listed in the README); anything that must not block a migration is a Warning."""

from __future__ import annotations

import os
from typing import Any

from django.core import checks
from django.core.management import get_commands

from safemigrate.conf import COMPRESSIONS, INTEGRITY_LEVELS, backup_dir_for, get_settings


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    conf = get_settings()
    directory = backup_dir_for("default")
    probe = directory if directory.exists() else directory.parent
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        messages.append(
            checks.Error(
                f"the backup folder {directory} is not writable",
                hint="Make it writable by this user, or set SAFEMIGRATE_BACKUP_DIR.",
                id="safemigrate.E001",
            )
        )
    if get_commands().get("migrate") != "safemigrate":
        messages.append(
            checks.Error(
                "`migrate` is not safemigrate's: another app overrides it",
                hint="Put 'safemigrate' above that app in INSTALLED_APPS.",
                id="safemigrate.E002",
            )
        )
    if conf.compress not in COMPRESSIONS:
        messages.append(
            checks.Error(
                f"SAFEMIGRATE_COMPRESS={conf.compress!r} is not one of {', '.join(COMPRESSIONS)}",
                hint="Use zstd (default), gzip or none.",
                id="safemigrate.E003",
            )
        )
    if conf.integrity_check not in INTEGRITY_LEVELS:
        messages.append(
            checks.Error(
                f"SAFEMIGRATE_INTEGRITY_CHECK={conf.integrity_check!r} is not quick or full",
                hint="Use quick (default) or full.",
                id="safemigrate.E004",
            )
        )
    if conf.keep < 1:
        messages.append(
            checks.Error(
                f"SAFEMIGRATE_KEEP={conf.keep} must be at least 1",
                hint="Set SAFEMIGRATE_KEEP to how many backups to keep (default 10).",
                id="safemigrate.E005",
            )
        )
    return messages
