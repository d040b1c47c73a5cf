"""Sizes and durations as a person reads them, for every door (commands, admin, notifications)."""

from __future__ import annotations


def human_size(size: int | float) -> str:
    """``512 B``, ``1.5 KB``, ``2.0 GB``: binary units (1 KB = 1024 bytes)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def human_duration(seconds: float) -> str:
    """``0.33 s``, ``12.4 s``, ``2 min 5 s``, ``1 h 2 min``: as a person reads a duration."""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
