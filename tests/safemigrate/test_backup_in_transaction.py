"""A backup taken inside an open transaction (ATOMIC_REQUESTS, atomic()) copies what is committed."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from safemigrate.backup import create_backup

pytestmark = pytest.mark.django_db(transaction=True)


def test_create_backup__inside_atomic_with_uncommitted_writes_finishes(backup_dir):
    User.objects.create_user("committed")
    result: dict = {}

    def run() -> None:
        with transaction.atomic():
            User.objects.create_user("uncommitted")
            result["backup"] = create_backup(alias="default", reason="in_tx")

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "create_backup hung inside a transaction"
    manifest = result["backup"].manifest
    assert manifest.verified
    assert manifest.row_counts["auth_user"] == 1  # what was committed, not the open transaction
