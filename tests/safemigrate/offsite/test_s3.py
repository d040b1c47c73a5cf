"""Off-site copies to S3 (django-storages' S3Storage) against moto's in-process S3."""

from __future__ import annotations

import hashlib
import shutil
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django_q.models import Task

from safemigrate.backup import create_backup
from safemigrate.catalogue import find_backup
from safemigrate.offsite import copy_offsite, list_offsite

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")
pytest.importorskip("storages.backends.s3")


@pytest.fixture
def bucket(settings, backup_dir, monkeypatch):
    """STORAGES["s3"] is a bucket in moto's in-process S3 (no network, no credentials)."""
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    with moto.mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="fitness-backups")
        settings.STORAGES = {
            **settings.STORAGES,
            "s3": {
                "BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {
                    "bucket_name": "fitness-backups",
                    "location": "fitnessdb",
                    "region_name": "us-east-1",
                    "access_key": "testing",
                    "secret_key": "testing",
                    "default_acl": None,
                },
            },
        }
        settings.SAFEMIGRATE_STORAGE = "s3"
        yield boto3.client("s3", region_name="us-east-1")


@pytest.mark.django_db(transaction=True)
def test_s3__copy_list_fetch_and_restore_end_to_end(bucket, backup_dir):
    User.objects.create_user("alice")
    manifest = create_backup(alias="default").manifest
    # The backup's follow-up (safemigrate.followup) copied it: a django-q2 task, sync in tests.
    first = Task.objects.get(func="safemigrate.tasks.copy_offsite", args=(manifest.name, "default"))
    assert first.success, first.result
    assert (first.result["kept"], first.result["sha256_checked"]) == ([], False)  # sizes read back only
    assert find_backup(manifest.name, alias="default").offsite["storage"] == "s3"
    again = copy_offsite(manifest=find_backup(manifest.name, alias="default"), verify=True)
    assert (again.kept, again.sha256_checked) == ([manifest.name], True)
    body = bucket.get_object(Bucket="fitness-backups", Key=f"fitnessdb/{manifest.name}")["Body"]
    assert hashlib.sha256(body.read()).hexdigest() == manifest.sha256
    assert [b.name for b in list_offsite()] == [manifest.name]

    shutil.rmtree(backup_dir)
    User.objects.all().delete()
    call_command(
        "restore",
        from_storage=manifest.name,
        interactive=False,
        no_safety_backup=True,
        stdout=StringIO(),
    )
    assert list(User.objects.values_list("username", flat=True)) == ["alice"]
    assert (backup_dir / manifest.name).is_file()
