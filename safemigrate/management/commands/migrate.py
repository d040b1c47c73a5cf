"""``migrate`` is ``safemigrate``: nobody migrates unsafely by habit (``--no-backup`` opts out)."""

from __future__ import annotations

from safemigrate.management.commands.safemigrate import Command

__all__ = ["Command"]
