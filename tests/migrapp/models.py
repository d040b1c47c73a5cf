"""A tiny app whose second migration can be made to fail half-way (MIGRAPP_FAIL=1), for tests."""

from __future__ import annotations

from django.db import models


class Item(models.Model):
    name = models.CharField(max_length=100)
    qty = models.IntegerField(default=0)
    note = models.CharField(max_length=200, default="", blank=True)

    class Meta:
        app_label = "migrapp"
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name
