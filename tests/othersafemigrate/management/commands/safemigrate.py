"""Stands in for the unrelated django-safemigrate's ``safemigrate`` command (system check W003)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Another app's safemigrate."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write("the other safemigrate")
