"""``migrate`` is ``safemigrate``: nobody migrates unsafely by habit (``--no-backup`` opts out)."""

from __future__ import annotations

from safemigrate.management.commands import safemigrate


class Command(safemigrate.Command):
    risk_plan = False  # `migrate --plan` prints exactly what Django prints; scripts parse it
