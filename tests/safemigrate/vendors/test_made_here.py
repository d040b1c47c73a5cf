"""Verify runs a server backup's SQL on the live server: only backups made here (or authenticated)."""

from __future__ import annotations

import json
import shutil

from tests.safemigrate.vendors.servers import LiveDB


def test_verifybackup__a_backup_not_made_here_is_refused_unless_trusted(db: LiveDB, tmp_path):
    name = db.backup()["name"]
    journal = db.backup_dir / ".work" / "made-here"
    assert name in journal.read_text()
    db.ok("verifybackup", name)

    # The same file, dropped in by someone who can write to the folder: no record of it here.
    kept = tmp_path / "journal"
    shutil.move(journal, kept)
    try:
        # A forged record without SECRET_KEY's MAC does not count either.
        sha = json.loads((db.backup_dir / f"{name}.manifest.json").read_text())["sha256"]
        journal.write_text(f"{name} {sha} {'0' * 64}\n")
        result = db.run("verifybackup", name)
        assert result.returncode == 1
        assert f"{name} was not made by this installation" in result.stdout
        assert "verifybackup --trust-file" in result.stdout
        assert db.leftovers() == []  # nothing was loaded
        db.ok("verifybackup", "--trust-file", name)
    finally:
        shutil.move(kept, journal)
