"""Someone else's ``migrate``."""

from __future__ import annotations

from django.core.management.commands.migrate import Command

__all__ = ["Command"]
