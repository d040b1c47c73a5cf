"""create_json_dump: the file, its format, determinism, natural keys and the backup manifest."""

from __future__ import annotations

import gzip
import json
import stat

import pytest
from django.apps import apps
from django.core.management import call_command

from safemigrate.backup import create_backup
from safemigrate.jsondump import NATURAL_PRIMARY, create_json_dump, dumped_models
from safemigrate.manifest import read_manifest
from safemigrate.models import Backup
from tests.safemigrate.jsondump.conftest import empty_database
from tests.safemigrate.jsondump.data import TRACKER, decoded, table_rows


def objects(path) -> list[dict]:
    """The dump's rows (without its header and end records)."""
    return [o for o in json.loads(decoded(path)) if "safemigrate_dump" not in o]


@pytest.mark.usefixtures("fitness_data")
def test_create_json_dump__writes_django_fixture_format_beside_a_manifest(backup_dir):
    result = create_json_dump(alias="default")

    assert result.path.parent == backup_dir
    assert result.path.name.startswith("backup-json-")
    assert result.path.name.endswith("-default.json.zst")
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o600
    sidecar = json.loads(result.manifest_path.read_text())
    assert sidecar["format"] == "safemigrate-json-dump"
    assert sidecar["sha256"] == result.sha256
    assert sidecar["models"] == result.models
    text = decoded(result.path)
    lines = text.split(b"\n")
    assert lines[0] == b"["
    assert lines[-2:] == [b"]", b""]
    assert all(line.endswith(b"},") for line in lines[1:-3])
    assert lines[-3].endswith(b"}")
    dumped = objects(result.path)
    assert len(dumped) == result.rows
    for label in TRACKER:
        model = apps.get_model(label)
        assert result.models[label] == model.objects.count() > 0
        pks = [o["pk"] for o in dumped if o["model"] == label]
        assert pks == sorted(pks)


@pytest.mark.usefixtures("fitness_data")
def test_create_json_dump__uses_natural_keys_like_dumpdata():
    """References to models with natural keys are keys; content types and permissions have no pk."""
    dumped = objects(create_json_dump(alias="default").path)

    by_model = {}
    for obj in dumped:
        by_model.setdefault(obj["model"], []).append(obj)
    assert all("pk" not in o for label in NATURAL_PRIMARY for o in by_model[label])
    assert {
        "model": "contenttypes.contenttype",
        "fields": {"app_label": "tracker", "model": "exercise"},
    } in by_model["contenttypes.contenttype"]
    ana = next(o for o in by_model["auth.user"] if o["fields"]["username"] == "ana")
    assert ana["fields"]["groups"] == [["coaches"]]
    assert ana["fields"]["user_permissions"] == [["view_exercise", "tracker", "exercise"]]
    assert ana["fields"]["last_name"] == "Ünïcödé\nsecond line"
    coaches = by_model["auth.group"][0]
    assert coaches["fields"]["permissions"] == [
        ["add_workout", "tracker", "workout"],
        ["change_workout", "tracker", "workout"],
    ]
    entry = by_model["admin.logentry"][0]
    assert entry["fields"]["content_type"] == ["tracker", "exercise"]
    assert entry["fields"]["user"] == ["ana"]
    workout_set = by_model["tracker.workoutset"][-1]
    assert workout_set["fields"]["weight"] == "9999.99"
    assert workout_set["fields"]["rpe"] is None
    assert "sessions.session" not in by_model  # logins are never in a dump (README: Security model)


def test_dumped_models__every_installed_model_but_queue_catalogue_and_sessions():
    labels = [m._meta.label_lower for m in dumped_models(alias="default")]

    assert not [label for label in labels if label.startswith(("django_q.", "safemigrate.", "sessions."))]
    assert set(TRACKER) | {"auth.user", "auth.group", "admin.logentry"} <= set(labels)
    # Parents before the rows that refer to them.
    assert labels.index("tracker.workout") < labels.index("tracker.workoutset")
    assert labels.index("tracker.exercise") < labels.index("tracker.workoutset")
    assert labels.index("contenttypes.contenttype") < labels.index("auth.permission")


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
@pytest.mark.usefixtures("fitness_data")
def test_create_json_dump__same_data_gives_the_same_bytes(settings, compression):
    settings.SAFEMIGRATE_COMPRESS = compression

    first = create_json_dump(alias="default")
    second = create_json_dump(alias="default")

    assert first.path != second.path
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.sha256 == second.sha256


@pytest.mark.usefixtures("fitness_data")
def test_create_json_dump__loaddata_reads_a_gzip_dump(settings):
    settings.SAFEMIGRATE_COMPRESS = "gzip"
    result = create_json_dump(alias="default")
    before = table_rows()
    assert result.path.name.endswith(".json.gz")
    assert json.loads(gzip.decompress(result.path.read_bytes()))  # plain gzip, no framing of ours
    empty_database()

    call_command("loaddata", str(result.path), verbosity=0)

    assert table_rows() == before


@pytest.mark.usefixtures("fitness_data")
def test_create_json_dump__for_a_backup_is_listed_in_its_manifest():
    backup = create_backup(alias="default", reason="before upgrade")

    result = create_json_dump(alias="default", backup=backup.manifest)

    stem = backup.manifest.file.removesuffix(".sqlite3.zst")
    assert result.path.name == f"{stem}.json.zst"
    assert result.backup is not None
    assert result.backup.json_dump == result.as_json()
    on_disk = read_manifest(backup.manifest.path)
    assert on_disk.json_dump["file"] == result.path.name
    assert on_disk.json_dump["sha256"] == result.sha256
    assert on_disk.json_dump["models"]["tracker.workoutset"] == result.models["tracker.workoutset"]
    assert on_disk.json_dump["migrations"]["tracker"] == result.migrations["tracker"]
    assert Backup.objects.get(name=backup.manifest.name).json_dump["file"] == result.path.name
    assert json.loads(result.manifest_path.read_text())["backup"] == backup.manifest.name


@pytest.mark.usefixtures("fitness_data")
def test_create_json_dump__reports_progress():
    messages: list[str] = []

    create_json_dump(alias="default", progress=messages.append)

    assert messages[0].startswith("writing a JSON dump of ")
    assert any(m.startswith("dumping tracker.workoutset (") for m in messages)
    assert messages[-1] == "reading the dump back to verify it"
