"""Backup files and manifests in the folder may be crafted: bombs and hostile fields are refused."""

from __future__ import annotations

import json
import logging
import shutil
from io import StringIO

import pytest
import zstandard
from django.core.management import CommandError, call_command

from safemigrate.backup import create_backup
from safemigrate.catalogue import list_backups
from safemigrate.rotation import rotate_backups
from tests.migrapp.models import Item

pytestmark = pytest.mark.django_db(transaction=True)


def test_restore__a_file_decoding_beyond_its_manifest_raw_size_is_refused(backup_dir):
    Item.objects.create(name="kept")
    manifest = create_backup(alias="default").manifest
    data = json.loads(manifest.path.read_text())
    data["raw_size"] = 4096
    data["verified"] = False
    manifest.path.write_text(json.dumps(data))
    Item.objects.create(name="also kept")
    with pytest.raises(CommandError, match=r"decodes to more than the 4,096 bytes"):
        call_command("restore", manifest.name, interactive=False, no_safety_backup=True, stdout=StringIO())
    assert Item.objects.count() == 2


def test_restore_file__a_bomb_without_manifest_stops_at_the_free_space_reserve(
    backup_dir, tmp_path, settings
):
    backup_dir.mkdir()
    bomb = tmp_path / "bomb.sqlite3.zst"
    bomb.write_bytes(zstandard.ZstdCompressor().compress(b"SQLite format 3\x00" + bytes(64 << 20)))
    assert bomb.stat().st_size < 65536
    settings.SAFEMIGRATE_FREE_SPACE_RESERVE = shutil.disk_usage(backup_dir).free - (8 << 20)
    with pytest.raises(CommandError, match=r"decodes to more than"):
        call_command("restore", file=str(bomb), interactive=False, no_safety_backup=True, stdout=StringIO())
    assert not [p for p in backup_dir.rglob("*") if p.is_file()]


def test_backups__a_manifest_with_a_wrong_type_is_skipped_with_a_warning(backup_dir, caplog):
    good = create_backup(alias="default").manifest
    bad = create_backup(alias="default", reason="other").manifest
    data = json.loads(bad.path.read_text())
    data["created"] = 12345
    bad.path.write_text(json.dumps(data))
    caplog.set_level(logging.WARNING, logger="safemigrate")
    out = StringIO()
    call_command("backups", format="json", stdout=out)
    assert [b["name"] for b in json.loads(out.getvalue())] == [good.name]
    assert "'created' has the wrong type" in caplog.text
    rotate_backups(alias="default", keep=1)  # no crash either
    call_command("restore", latest=True, interactive=False, no_safety_backup=True, stdout=StringIO())


def test_rotation__a_manifest_naming_another_backup_cannot_delete_it(backup_dir):
    decoy = create_backup(alias="default").manifest  # older: rotation deletes it
    victim = create_backup(alias="default").manifest  # the newest: rotation keeps it
    data = json.loads(decoy.path.read_text())
    data["file"] = victim.name  # rotation would delete the file this names
    decoy.path.write_text(json.dumps(data))
    rotate_backups(alias="default", keep=1)
    assert (backup_dir / victim.name).is_file()
    assert victim.name in {m.name for m in list_backups(alias="default")}


def test_backups__a_symlinked_manifest_is_not_followed(backup_dir, tmp_path):
    real = create_backup(alias="default").manifest
    elsewhere = tmp_path / "elsewhere.json"
    shutil.copy(real.path, elsewhere)
    real.path.unlink()
    real.path.symlink_to(elsewhere)
    assert list_backups(alias="default") == []


def test_lock__a_symlink_planted_as_the_lock_file_is_not_followed(tmp_path):
    """The lock file beside the database would truncate whatever a planted link points at."""
    from tests.safemigrate.helpers import manage, prepared_db

    env = prepared_db(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (tmp_path / "db.sqlite3.safemigrate-lock").symlink_to(victim)
    result = manage("backup", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("CommandError: cannot use the lock file")
    assert victim.read_text() == "precious"


@pytest.mark.parametrize(
    "name",
    [
        "../backup-manual-20200101T000000Z-default.sqlite3",
        "/etc/passwd",
        ".backup-manual-20200101T000000Z-default.sqlite3",
        "backup-manual-20200101T000000Z-default.sqlite3.manifest.json",
        "backup-manual-20200101T000000Z-default.sqlite3/../../x",
    ],
)
def test_manifest_names__only_plain_backup_names_pass(name):
    from safemigrate.manifest import is_backup_name

    assert not is_backup_name(name)
    assert is_backup_name("backup-manual-20200101T000000Z-default.sqlite3.zst.enc")


def test_restore_file__a_truncated_zstd_backup_without_manifest_is_refused(backup_dir, tmp_path):
    """Cut short (a copy that stopped half way): one clear line, the live database unchanged."""
    Item.objects.bulk_create(Item(name=f"row {i}") for i in range(2000))
    manifest = create_backup(alias="default").manifest
    data = manifest.file_path.read_bytes()
    copy = tmp_path / manifest.file
    copy.write_bytes(data[: len(data) * 2 // 3])
    Item.objects.create(name="written after the backup")
    with pytest.raises(CommandError, match=r"^[^\n]* is damaged or truncated [^\n]*$"):
        call_command("restore", file=str(copy), interactive=False, no_safety_backup=True, stdout=StringIO())
    assert Item.objects.count() == 2001


def test_restore_preview__warns_about_a_trigger_the_migrations_did_not_create(backup_dir, tmp_path):
    """A crafted SQLite backup with an extra trigger passed verify and restore silently."""
    import hashlib
    import sqlite3

    from safemigrate.restore import restore_preview

    manifest = create_backup(alias="default").manifest
    plain = tmp_path / "plain.sqlite3"
    plain.write_bytes(
        zstandard.ZstdDecompressor().decompressobj().decompress(manifest.file_path.read_bytes())
    )
    with sqlite3.connect(plain) as conn:
        conn.execute(
            "CREATE TRIGGER evil AFTER INSERT ON migrapp_item BEGIN "
            "UPDATE auth_user SET is_superuser = 1; END"
        )
        conn.execute("CREATE VIEW peek AS SELECT password FROM auth_user")
    conn.close()
    raw = plain.read_bytes()
    data = zstandard.ZstdCompressor(write_checksum=True, write_content_size=True).compress(raw)
    manifest.file_path.write_bytes(data)
    fields = json.loads(manifest.path.read_text())
    fields.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data), raw_size=len(raw), raw_sha256="")
    manifest.path.write_text(json.dumps(fields))
    (crafted,) = list_backups(alias="default")

    warnings = restore_preview(backup=crafted, alias="default").warnings
    assert any("trigger evil" in w and "view peek" in w for w in warnings), warnings
    assert not [p for p in (backup_dir / ".work").iterdir() if p.name.startswith(".restore-")]


def test_restore_preview__an_honest_backup_has_no_schema_warning(backup_dir):
    from safemigrate.restore import restore_preview

    manifest = create_backup(alias="default").manifest
    assert not [w for w in restore_preview(backup=manifest, alias="default").warnings if "trigger" in w]
