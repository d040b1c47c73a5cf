"""safemigrate: Django migrations that are checked, backed up, verified and rolled back."""

from __future__ import annotations

__version__ = "0.1.0"
