"""load_json_dump: exact round trips, refusing data, replacing it safely, and every bad input."""

from __future__ import annotations

import json
import re

import pytest
from django.apps import apps
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command

from fitnessdb.tracker.models import Exercise, WorkoutSet
from safemigrate.exceptions import ChecksumMismatch, RestoreError
from safemigrate.jsondump import create_json_dump, dumped_models, load_json_dump
from safemigrate.manifest import read_manifest
from tests.safemigrate.jsondump.conftest import empty_database
from tests.safemigrate.jsondump.data import decoded, edit_object, rewrite_dump, table_rows, write_stored

# Every model whose rows hold no content type or permission ids (those are the target's own).
ROWS = tuple(
    m._meta.label_lower
    for m in dumped_models(alias="default")
    if m._meta.label_lower not in {"contenttypes.contenttype", "auth.permission", "admin.logentry"}
)


def log_entries() -> list[tuple]:
    return [
        (e.pk, e.action_time, e.user_id, e.content_type.natural_key(), e.object_id, e.object_repr)
        for e in LogEntry.objects.order_by("pk")
    ]


def nothing_loaded() -> bool:
    return all(not rows for rows in table_rows(ROWS).values())


@pytest.fixture
def dump(fitness_data):
    """A dump of the fitness data, and the database emptied again."""
    result = create_json_dump(alias="default")
    rows, entries = table_rows(ROWS), log_entries()
    empty_database()
    return result, rows, entries


def test_load_json_dump__round_trip_is_exact(dump):
    """Every row comes back, even where the target's content type ids differ from the source's."""
    result, rows, entries = dump
    ContentType.objects.get_by_natural_key("tracker", "exercise").delete()  # new ids on load
    ContentType.objects.clear_cache()

    loaded = load_json_dump(path=result.path, alias="default")

    assert loaded.models == result.models
    assert loaded.rows == result.rows > 100
    assert table_rows(ROWS) == rows
    assert log_entries() == entries
    ana = apps.get_model("auth.user").objects.get(username="ana")
    assert [p.natural_key() for p in ana.user_permissions.all()] == [("view_exercise", "tracker", "exercise")]
    assert sorted(p.codename for p in ana.groups.get().permissions.all()) == [
        "add_workout",
        "change_workout",
    ]
    again = create_json_dump(alias="default")
    assert decoded(again.path) == decoded(result.path)
    assert again.raw_sha256 == result.raw_sha256


def test_load_json_dump__resets_sequences_so_new_rows_get_new_ids(dump):
    result, *_ = dump
    load_json_dump(path=result.path, alias="default")

    created = Exercise.objects.create(name="Brand New", muscle_group="core", equipment="other")

    assert created.pk > max(Exercise.objects.exclude(pk=created.pk).values_list("pk", flat=True))


def test_load_json_dump__refuses_a_database_with_data(dump):
    result, *_ = dump
    Exercise.objects.create(name="Already here", muscle_group="core", equipment="other")

    with pytest.raises(RestoreError) as excinfo:
        load_json_dump(path=result.path, alias="default")

    assert str(excinfo.value) == (
        "database 'default' already has data (tracker.exercise); load into an empty, migrated "
        "database, or replace its data with --replace (a safety backup is taken first)"
    )
    assert list(Exercise.objects.values_list("name", flat=True)) == ["Already here"]


def test_load_json_dump__replace_takes_a_safety_backup_first(dump):
    result, rows, _ = dump
    Exercise.objects.create(name="Already here", muscle_group="core", equipment="other")

    loaded = load_json_dump(path=result.path, alias="default", replace=True)

    assert loaded.replaced
    assert table_rows(ROWS) == rows
    safety = loaded.safety_backup
    assert safety is not None
    assert safety.manifest.reason == "pre_json_restore"
    assert read_manifest(safety.manifest.path).row_counts["tracker_exercise"] == 1


def test_load_json_dump__encrypted_round_trip(fitness_data, settings):
    settings.SAFEMIGRATE_ENCRYPTION_KEY = "correct horse battery staple"
    result = create_json_dump(alias="default")
    rows = table_rows(ROWS)
    empty_database()

    load_json_dump(path=result.path, alias="default")

    assert result.path.name.endswith(".json.zst.enc")
    assert table_rows(ROWS) == rows


def test_load_json_dump__with_a_key_a_planted_unencrypted_dump_is_refused(fitness_data, settings):
    """Swap attack: a plaintext dump (an attacker's superuser in it) where a key is set."""
    planted = create_json_dump(alias="default")  # made without the key
    empty_database()
    settings.SAFEMIGRATE_ENCRYPTION_KEY = "correct horse battery staple"

    with pytest.raises(RestoreError, match=r"is not encrypted but SAFEMIGRATE_ENCRYPTION_KEY is set"):
        load_json_dump(path=planted.path, alias="default")
    assert nothing_loaded()


def test_load_json_dump__with_a_key_an_edited_dump_manifest_is_refused(fitness_data, settings):
    settings.SAFEMIGRATE_ENCRYPTION_KEY = "correct horse battery staple"
    result = create_json_dump(alias="default")
    empty_database()
    sidecar = result.manifest_path
    data = json.loads(sidecar.read_text())
    data["models"]["tracker.exercise"] += 1
    sidecar.write_text(json.dumps(data))

    with pytest.raises(RestoreError, match=r"fails its authentication"):
        load_json_dump(path=result.path, alias="default")
    assert nothing_loaded()


def test_load_json_dump__truncated_file_is_refused_before_anything_changes(dump):
    result, *_ = dump
    data = result.path.read_bytes()
    result.path.write_bytes(data[: len(data) // 2])

    with pytest.raises(ChecksumMismatch, match=r"is \d[\d,]* bytes but its manifest says"):
        load_json_dump(path=result.path, alias="default")

    assert nothing_loaded()


def test_load_json_dump__corrupt_file_is_refused(dump):
    result, *_ = dump
    data = bytearray(result.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    result.path.write_bytes(bytes(data))

    with pytest.raises(
        ChecksumMismatch, match="^checksum mismatch for backup-json-.*the database was not changed"
    ):
        load_json_dump(path=result.path, alias="default")

    assert nothing_loaded()


def test_load_json_dump__cut_short_inside_rolls_everything_back(dump):
    """A dump whose checksums match but whose end is missing: rows went in, then out again."""
    result, *_ = dump
    rewrite_dump(result.path, lambda lines: lines[:-3])

    with pytest.raises(ChecksumMismatch, match=r"is truncated \(it ends without '\]'\)"):
        load_json_dump(path=result.path, alias="default")

    assert nothing_loaded()


def test_load_json_dump__a_dump_copied_alone_loads_from_its_own_header(dump, tmp_path):
    """Moving data between machines: the dump file alone carries its checks and migrations."""
    result, before, *_ = dump
    alone = tmp_path / "elsewhere" / result.path.name
    alone.parent.mkdir()
    result.path.rename(alone)

    loaded = load_json_dump(path=alone, alias="default")

    assert loaded.models == result.models
    assert table_rows(ROWS) == before


def test_load_json_dump__alone_and_damaged_is_refused(dump):
    """Without the sidecar, the end record's hash still catches an edited row."""
    result, *_ = dump
    result.manifest_path.unlink()
    text = decoded(result.path, compression="zstd", encrypted=False)
    lines = text.split(b"\n")
    n = next(i for i, line in enumerate(lines) if line.startswith(b'{"model":"tracker.workout"'))
    lines[n] = lines[n].replace(b'"notes":"', b'"notes":"tampered ', 1)
    write_stored(result.path, b"\n".join(lines), compression="zstd")

    with pytest.raises(ChecksumMismatch, match=r"does not match the checksum in its end record"):
        load_json_dump(path=result.path, alias="default")
    assert nothing_loaded()


def test_load_json_dump__alone_and_cut_short_is_refused(dump):
    result, *_ = dump
    result.manifest_path.unlink()
    lines = decoded(result.path, compression="zstd", encrypted=False).split(b"\n")
    write_stored(result.path, b"\n".join([*lines[:-4], b"]", b""]), compression="zstd")

    with pytest.raises(ChecksumMismatch, match=r"ends without its end record: the file is truncated"):
        load_json_dump(path=result.path, alias="default")
    assert nothing_loaded()


def test_load_json_dump__missing_manifest_and_no_header(dump):
    """A dump of format 1 (no header inside) copied without its sidecar: say what to copy."""
    result, *_ = dump
    result.manifest_path.unlink()
    lines = decoded(result.path, compression="zstd", encrypted=False).split(b"\n")
    write_stored(result.path, b"\n".join([lines[0], *lines[2:]]), compression="zstd")

    with pytest.raises(RestoreError) as excinfo:
        load_json_dump(path=result.path, alias="default")

    assert str(excinfo.value) == (
        f"{result.path.name} has no dump manifest beside it ({result.manifest_path.name}) and does "
        "not describe itself (made before safemigrate wrote format 2, or not a safemigrate dump); "
        "copy the manifest with the dump"
    )


def test_loaddata__reads_the_header_and_end_records_as_plain_fixture_objects(dump, tmp_path):
    """Django's own loaddata still reads a dump: the description rides on content type records."""
    result, before, *_ = dump
    plain = tmp_path / "dump.json"
    plain.write_bytes(decoded(result.path))
    call_command("loaddata", str(plain), verbosity=0)
    assert table_rows(ROWS) == before


def test_load_json_dump__from_another_project(dump):
    result, *_ = dump

    def blog(lines):
        return [lines[0], b'{"model":"blog.post","pk":1,"fields":{"title":"hi"}},', *lines[1:]]

    def manifest(info):
        info["models"] = {"blog.post": 1, **info["models"]}
        info["migrations"]["blog"] = ["0001_initial"]

    rewrite_dump(result.path, blog, manifest)

    with pytest.raises(RestoreError) as excinfo:
        load_json_dump(path=result.path, alias="default")

    assert str(excinfo.value) == (
        f"{result.path.name} holds models this project does not have (blog.post): it was made "
        "by another project or by code with other apps; the database was not changed"
    )
    assert nothing_loaded()


def test_load_json_dump__says_which_apps_are_at_other_migrations(dump):
    result, *_ = dump

    def manifest(info):
        info["migrations"]["tracker"].append("0099_future")
        info["migrations"]["contenttypes"] = ["0001_initial"]

    rewrite_dump(result.path, manifest=manifest)

    with pytest.raises(RestoreError) as excinfo:
        load_json_dump(path=result.path, alias="default")

    assert str(excinfo.value) == (
        f"{result.path.name} was made at other migrations than this code: contenttypes (only in "
        "this database: 0002_remove_content_type_name); tracker (only in the dump: 0099_future). "
        "Load it with code at the dump's migrations (then migrate), or migrate the source and dump again; "
        "the database was not changed"
    )


def test_load_json_dump__check_constraint_violation_names_the_row(dump):
    result, *_ = dump
    rewrite_dump(result.path, edit_object("tracker.workoutset", 5, lambda o: o["fields"].update(reps=0)))
    bad = [o for o in json.loads(decoded(result.path)) if o["model"] == "tracker.workoutset"][5]

    with pytest.raises(RestoreError) as excinfo:
        load_json_dump(path=result.path, alias="default")

    message = str(excinfo.value)
    assert re.fullmatch(
        rf"cannot load tracker\.workoutset pk={bad['pk']} "
        rf"\(line \d+ of {re.escape(result.path.name)}\): "
        r"CHECK constraint failed: tracker_workoutset_reps_positive; the database was not "
        r"changed\. Fix that row in the source database and dump again",
        message,
    ), message
    assert nothing_loaded()


def test_load_json_dump__unique_violation_names_the_row(dump):
    result, *_ = dump
    first = [o for o in json.loads(decoded(result.path)) if o["model"] == "tracker.exercise"][0]
    rewrite_dump(
        result.path,
        edit_object("tracker.exercise", 1, lambda o: o["fields"].update(name=first["fields"]["name"])),
    )

    with pytest.raises(
        RestoreError,
        match=r"^cannot load tracker\.exercise pk=\d+ \(line \d+ of .*UNIQUE constraint failed",
    ):
        load_json_dump(path=result.path, alias="default")

    assert nothing_loaded()


def test_load_json_dump__broken_foreign_key_names_the_row(dump):
    result, *_ = dump
    rewrite_dump(
        result.path,
        edit_object("tracker.workoutset", 0, lambda o: o["fields"].update(workout=987654)),
    )

    with pytest.raises(RestoreError) as excinfo:
        load_json_dump(path=result.path, alias="default")

    assert re.match(
        rf"{re.escape(result.path.name)} breaks a foreign key: The row in table "
        r"'tracker_workoutset' with primary key '\d+' has an invalid foreign key: "
        r"tracker_workoutset\.workout_id contains a value '987654'",
        str(excinfo.value),
    ), str(excinfo.value)
    assert nothing_loaded()


def test_load_json_dump__bad_value_names_the_row(dump):
    result, *_ = dump
    rewrite_dump(
        result.path,
        edit_object("tracker.workout", 2, lambda o: o["fields"].update(date="not a date")),
    )

    with pytest.raises(
        RestoreError,
        match=r"^cannot load tracker\.workout pk=\d+ \(line \d+ of .*: "
        r"Invalid isoformat string: 'not a date'",
    ):
        load_json_dump(path=result.path, alias="default")

    assert nothing_loaded()


def test_load_json_dump__row_counts_must_match_the_manifest(dump):
    result, *_ = dump
    rewrite_dump(result.path, manifest=lambda info: info["models"].update({"tracker.workoutset": 1}))

    with pytest.raises(
        RestoreError,
        match=r"does not hold the rows its manifest lists "
        r"\(tracker\.workoutset: \d+ rows, manifest says 1\)",
    ):
        load_json_dump(path=result.path, alias="default")

    assert WorkoutSet.objects.count() == 0


def test_load_json_dump__reports_rows_per_model_and_progress(dump):
    result, *_ = dump
    messages: list[str] = []

    loaded = load_json_dump(path=result.path, alias="default", progress=messages.append)

    assert loaded.models["tracker.workoutset"] == WorkoutSet.objects.count()
    assert set(loaded.models) == set(result.models)
    assert messages[0] == f"checking {result.path.name}"
    assert "loading tracker.workoutset" in messages
    assert apps.get_model("auth.user").objects.get(username="ana").groups.get().name == "coaches"


def test_load_json_dump__failed_replace_keeps_the_old_data(dump):
    """Rows were deleted and new ones inserted before the bad row: all of it is rolled back."""
    result, *_ = dump
    Exercise.objects.create(name="Already here", muscle_group="core", equipment="other")
    rewrite_dump(result.path, edit_object("tracker.workoutset", 3, lambda o: o["fields"].update(reps=0)))

    with pytest.raises(RestoreError, match=r"^cannot load tracker\.workoutset pk="):
        load_json_dump(path=result.path, alias="default", replace=True)

    assert list(Exercise.objects.values_list("name", flat=True)) == ["Already here"]
    assert WorkoutSet.objects.count() == 0


def test_load_json_dump__no_such_file(transactional_db, tmp_path):
    with pytest.raises(RestoreError, match=rf"^no JSON dump at {tmp_path}/nope\.json\.zst$"):
        load_json_dump(path=tmp_path / "nope.json.zst", alias="default")


def test_load_json_dump__a_database_backup_points_to_restore(transactional_db, backup_dir):
    """restore --json given a database backup said "no dump manifest"; say what it is instead."""
    from safemigrate.backup import create_backup

    backup = create_backup(alias="default", reason="manual")

    with pytest.raises(RestoreError) as excinfo:
        load_json_dump(path=backup.manifest.file_path, alias="default")

    assert str(excinfo.value).startswith(
        f"{backup.manifest.file} is a database backup, not a JSON dump: restore it with "
        f"`manage.py restore --file {backup.manifest.file_path}`"
    )


def test_load_json_dump__a_never_ending_line_is_refused_in_bounded_memory(dump):
    """A crafted dump whose third line never ends: one clear line, not gigabytes and minutes."""
    from safemigrate.jsondump.format import MAX_LINE

    result, *_ = dump
    result.manifest_path.unlink()
    lines = decoded(result.path, compression="zstd", encrypted=False).split(b"\n")
    endless = b'{"model":"tracker.workout","pk":1,"fields":{"notes":"' + b"x" * (MAX_LINE + (2 << 20))
    write_stored(result.path, b"\n".join([*lines[:2], endless]), compression="zstd")

    expected = r"^line 3 of \S+ is longer than 67,108,864 bytes: .*Use another dump$"
    with pytest.raises(RestoreError, match=expected):
        load_json_dump(path=result.path, alias="default")
    assert nothing_loaded()
