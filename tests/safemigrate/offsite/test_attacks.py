"""Attacks by someone who can write to the off-site storage (but has no key): each is refused.

The storage is moto's in-process S3 with no prefix (keys are opaque strings there, "../" included),
as in the security review; the data and backups are real.
"""

from __future__ import annotations

import json
import os
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from safemigrate.backup import create_backup
from safemigrate.offsite import copy_offsite
from tests.safemigrate.helpers import files_in

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")
pytest.importorskip("storages.backends.s3")

pytestmark = pytest.mark.django_db(transaction=True)
BUCKET = "fitness-backups"


@pytest.fixture
def s3(settings, backup_dir, monkeypatch):
    """STORAGES["s3"]: a bucket without a prefix in moto's in-process S3."""
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    with moto.mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        settings.STORAGES = {
            **settings.STORAGES,
            "s3": {
                "BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {
                    "bucket_name": BUCKET,
                    "region_name": "us-east-1",
                    "access_key": "testing",
                    "secret_key": "testing",
                    "default_acl": None,
                },
            },
        }
        settings.SAFEMIGRATE_STORAGE = "s3"
        yield client


def put(s3, key: str, body: bytes) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)


def get_json(s3, key: str) -> dict:
    return json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def restore_from_storage(name: str) -> None:
    call_command("restore", from_storage=name, interactive=False, no_safety_backup=True, stdout=StringIO())


def offsite_backup() -> str:
    return copy_offsite(manifest=create_backup(alias="default").manifest).manifest.name


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("json_dump", {"file": "/./../../{target}", "size": 6, "sha256": "-"}),
        ("json_dump", {"file": "../{target}", "size": 6, "sha256": "-"}),
        ("file", "/./../../{target}"),
    ],
)
def test_fetch__a_manifest_name_pointing_outside_the_folder_writes_nothing(
    s3, backup_dir, tmp_path, field, value
):
    """The review's exploit: a name in the off-site manifest points at a path of the attacker's
    choice (a .pth file runs code at the next Python start); nothing may be written there."""
    name = offsite_backup()
    target = tmp_path / "outside" / "evil.pth"
    target.parent.mkdir()
    rel = os.path.relpath(target, backup_dir)
    manifest = get_json(s3, f"{name}.manifest.json")
    manifest[field] = (
        {k: (v.format(target=rel) if isinstance(v, str) else v) for k, v in value.items()}
        if isinstance(value, dict)
        else value.format(target=rel)
    )
    evil_key = manifest[field]["file"] if isinstance(value, dict) else manifest[field]
    put(s3, evil_key, b"import os; os.system('touch /tmp/pwned')\n")
    put(s3, f"{name}.manifest.json", json.dumps(manifest).encode())
    shutil.rmtree(backup_dir)
    refused = r"is not a safemigrate manifest: .* not a safemigrate (backup )?name"
    with pytest.raises(CommandError, match=refused):
        restore_from_storage(name)
    assert not target.exists()
    assert not any(p.name == "evil.pth" for p in tmp_path.rglob("*"))
    assert files_in(backup_dir) == []


def test_fetch__a_planted_symlink_at_the_temporary_name_is_not_followed(s3, backup_dir, tmp_path):
    name = offsite_backup()
    shutil.rmtree(backup_dir)
    work = backup_dir / ".work"
    work.mkdir(parents=True, mode=0o700)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (work / f".{name}.manifest.json.fetch-{os.getpid()}").symlink_to(victim)
    with pytest.raises(CommandError, match=r"^fetching .* failed: .*File exists"):
        restore_from_storage(name)
    assert victim.read_text() == "precious"


def test_fetch__with_a_key_an_unencrypted_backup_is_refused(s3, backup_dir, settings):
    """Swap attack: the attacker uploads a plaintext backup (with their own superuser) and its
    manifest, "encryption": null; the lost-volume restore must refuse it."""
    settings.SAFEMIGRATE_ENCRYPTION_KEY = None
    User.objects.create_superuser("mallory", password="x")
    planted = offsite_backup()  # made without the key: unencrypted, no MAC
    User.objects.filter(username="mallory").delete()
    settings.SAFEMIGRATE_ENCRYPTION_KEY = "a long correct horse battery staple"
    User.objects.create_user("alice")
    offsite_backup()
    shutil.rmtree(backup_dir)
    with pytest.raises(CommandError, match=r"is not encrypted but SAFEMIGRATE_ENCRYPTION_KEY is set"):
        restore_from_storage(planted)
    assert list(User.objects.values_list("username", flat=True)) == ["alice"]
    assert files_in(backup_dir) == []


def test_fetch__with_a_key_an_edited_manifest_is_refused(s3, backup_dir, settings):
    """The attacker flips "encryption" to null in a real manifest (and uploads plaintext)."""
    settings.SAFEMIGRATE_ENCRYPTION_KEY = "a long correct horse battery staple"
    name = offsite_backup()
    manifest = get_json(s3, f"{name}.manifest.json")
    manifest["verified"] = True
    manifest["reason"] = "scheduled"
    put(s3, f"{name}.manifest.json", json.dumps(manifest).encode())
    shutil.rmtree(backup_dir)
    with pytest.raises(CommandError, match=r"fails its authentication"):
        restore_from_storage(name)
    assert files_in(backup_dir) == []


def test_fetch__with_a_key_an_old_backup_under_a_newer_name_is_refused(s3, backup_dir, settings):
    """Rollback attack: yesterday's ciphertext and manifest, renamed as today's backup."""
    settings.SAFEMIGRATE_ENCRYPTION_KEY = "a long correct horse battery staple"
    User.objects.create_user("alice")
    old = offsite_backup()
    User.objects.create_user("bob")
    new = offsite_backup()
    assert old != new
    manifest = get_json(s3, f"{old}.manifest.json")
    manifest.update(name=new, file=new, created=get_json(s3, f"{new}.manifest.json")["created"])
    manifest["offsite"]["name"] = new
    put(s3, new, s3.get_object(Bucket=BUCKET, Key=old)["Body"].read())
    put(s3, f"{new}.manifest.json", json.dumps(manifest).encode())
    shutil.rmtree(backup_dir)
    with pytest.raises(CommandError, match=r"fails its authentication"):
        restore_from_storage(new)
    assert sorted(User.objects.values_list("username", flat=True)) == ["alice", "bob"]
    assert files_in(backup_dir) == []


def test_fetch__with_a_key_the_real_backup_still_restores(s3, backup_dir, settings):
    settings.SAFEMIGRATE_ENCRYPTION_KEY = "a long correct horse battery staple"
    User.objects.create_user("alice")
    name = offsite_backup()
    shutil.rmtree(backup_dir)
    User.objects.all().delete()
    restore_from_storage(name)
    assert list(User.objects.values_list("username", flat=True)) == ["alice"]
    assert Path(backup_dir / name).is_file()
