"""The admin: the backup catalogue (``backups``) and the log of migration runs (``runs``).

Django's autodiscover imports this package; importing the two modules registers their ModelAdmins.
"""

from __future__ import annotations

from safemigrate.admin.backups import BackupAdmin
from safemigrate.admin.presentation import backup_chart, inline_code
from safemigrate.admin.runs import MigrationRunAdmin
from safemigrate.units import human_duration

__all__ = ["BackupAdmin", "MigrationRunAdmin", "backup_chart", "human_duration", "inline_code"]
