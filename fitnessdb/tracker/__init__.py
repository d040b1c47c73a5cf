"""The fitness domain: exercises, programs, workouts with their sets, and body metrics."""

from __future__ import annotations
