"""Manifest changes are read-modify-writes under a lock: none undoes another."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from django.urls import reverse

from safemigrate.backup import create_backup
from safemigrate.manifest import read_manifest, update_manifest
from safemigrate.restore import verify_backup
from tests.safemigrate.helpers import ROOT

UPDATER = """
import sys, time
from pathlib import Path
from django.conf import settings
path, field, ready, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
settings.configure(SAFEMIGRATE_BACKUP_DIR=str(path.parent))  # no key: manifests are not signed
from safemigrate.manifest import read_manifest, update_manifest
manifest = read_manifest(path)  # both processes hold a copy before either writes
ready.touch()
while not go.exists():
    time.sleep(0.01)
for n in range(40):
    manifest = update_manifest(manifest, **{field: {"n": n}})
"""


@pytest.mark.django_db(transaction=True)
def test_update_manifest__a_pin_during_verification_survives_it(admin_client, backup_dir):
    manifest = update_manifest(create_backup(alias="default").manifest, verified=False, verified_at=None)
    from safemigrate.models import Backup

    pin_url = reverse("admin:safemigrate_backup_pin", args=[Backup.objects.get(name=manifest.name).pk])
    pinned: list[int] = []

    def pin_while_verifying(message: str) -> None:
        if not pinned:  # an admin click half-way through the verification
            pinned.append(admin_client.post(pin_url, {"pinned": "1"}).status_code)

    verify_backup(backup=manifest, alias="default", progress=pin_while_verifying)
    assert pinned == [302]
    on_disk = read_manifest(manifest.path)
    assert on_disk.verified
    assert on_disk.pinned
    assert Backup.objects.get(name=manifest.name).pinned


@pytest.mark.django_db
def test_update_manifest__two_processes_lose_no_change(backup_dir, tmp_path):
    """Each process rewrites its own field 40 times from a stale copy; both fields end up current."""
    manifest = create_backup(alias="default").manifest
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", UPDATER, str(manifest.path), field, str(tmp_path / field), str(go)],
            cwd=ROOT,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        )
        for field in ("json_dump", "offsite")
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f).exists() for f in ("json_dump", "offsite")):
        assert time.monotonic() < deadline, "updaters did not start"
        assert all(p.poll() is None for p in procs), "an updater died"
        time.sleep(0.05)
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    on_disk = read_manifest(manifest.path)
    assert on_disk.json_dump == {"n": 39}
    assert on_disk.offsite == {"n": 39}
    assert on_disk.sha256 == manifest.sha256
    leftovers = [p.name for p in backup_dir.iterdir() if ".tmp-" in p.name]
    assert leftovers == []


@pytest.mark.django_db(transaction=True)
def test_read_manifest__an_older_signed_manifest_with_raw_sha256_still_authenticates(backup_dir, settings):
    """Manifests used to carry an always-empty ``raw_sha256`` under their MAC: still trusted,
    and an edited one still refused."""
    import json

    from safemigrate.codec import mac_of
    from safemigrate.manifest import authentication_problem

    key = settings.SAFEMIGRATE_ENCRYPTION_KEY = "a long correct horse battery staple"
    path = create_backup(alias="default").manifest.path
    data = json.loads(path.read_text())
    assert "raw_sha256" not in data
    data["raw_sha256"] = ""
    for newer in ("pinned_until", "verification_failure"):
        data.pop(newer, None)  # an older manifest had neither
    data["mac"] = mac_of({k: v for k, v in data.items() if k != "mac"}, key)
    path.write_text(json.dumps(data))
    assert authentication_problem(read_manifest(path), key) is None
    assert verify_backup(backup=read_manifest(path)).verified

    data["size"] += 1
    path.write_text(json.dumps(data))
    assert "fails its authentication" in str(authentication_problem(read_manifest(path), key))
