"""The backup list reads the catalogue, not the folder: no manifest is opened and the number of
SQL queries does not grow with the number of backups (issue #17; the timing is in
bench/bench_admin.py, not in a test)."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

import safemigrate.manifest as manifest_module
from safemigrate import catalogue
from safemigrate.manifest import read_manifest, update_manifest, write_manifest

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = reverse("admin:safemigrate_backup_changelist")


def add_copies(backup, count: int, start: int = 1) -> None:
    """``count`` more backups in the folder and the catalogue: copies of ``backup`` under new names."""
    first = read_manifest(backup.manifest_path)
    folder = first.file_path.parent
    for i in range(start, start + count):
        when = first.created_at - timedelta(hours=i)
        name = f"backup-copy-{when:%Y%m%dT%H%M%SZ}-default.sqlite3.zst"
        os.link(first.file_path, folder / name)
        catalogue.record(
            write_manifest(replace(first, name=name, file=name, created=when.isoformat()), folder)
        )


@pytest.fixture
def opened(monkeypatch):
    """How many manifests (JSON files in the backup folder) were read."""
    count = {"n": 0}
    real = manifest_module.read_json_file

    def counting(*args, **kwargs):
        count["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(manifest_module, "read_json_file", counting)
    return count


def changelist_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(CHANGELIST).status_code == 200
    return len(queries.captured_queries)


def test_changelist__opens_no_manifest(admin_client, backup, opened):
    add_copies(backup, 30)
    opened["n"] = 0
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    assert response.context["cl"].result_count == 31
    assert opened["n"] == 0


def test_changelist__queries_do_not_grow_with_the_backups(admin_client, backup):
    add_copies(backup, 3)
    few = changelist_queries(admin_client)
    add_copies(backup, 60, start=10)
    assert changelist_queries(admin_client) == few


def test_changelist__banner_from_the_catalogue_still_warns(admin_client, backup):
    """W001 from the catalogue's rows: an old newest verified backup is still reported."""
    manifest = read_manifest(backup.manifest_path)
    old = (manifest.created_at - timedelta(days=30)).isoformat()
    catalogue.record(update_manifest(manifest, created=old))
    html = admin_client.get(CHANGELIST).content.decode()
    assert (
        "safemigrate.W001: the newest verified backup of database &#x27;default&#x27; is 30 days old" in html
    )
