"""Realistic data for the JSON dump tests, and helpers to read and tamper with dumps."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from safemigrate.catalogue import db_datetime
from safemigrate.codec import BackupReader, BackupWriter

TRACKER = (
    "tracker.exercise",
    "tracker.program",
    "tracker.programexercise",
    "tracker.workout",
    "tracker.workoutset",
    "tracker.bodymetric",
)


def add_fitness_data(using: str = "default") -> None:
    """The demo catalogue and weeks (seed_demo), plus accounts, an admin log entry, a session
    and rows with awkward values: what a dump must carry across engines exactly."""
    from django.contrib.admin.models import ADDITION, LogEntry
    from django.contrib.auth.models import Group, Permission, User
    from django.contrib.contenttypes.models import ContentType
    from django.contrib.sessions.models import Session
    from django.core.management import call_command

    from fitnessdb.tracker.models import BodyMetric, Exercise, Workout, WorkoutSet

    call_command("seed_demo", database=using, verbosity=0)
    coaches = Group.objects.db_manager(using).create(name="coaches")
    coaches.permissions.add(
        *Permission.objects.db_manager(using).filter(codename__in=["add_workout", "change_workout"])
    )
    ana = User.objects.db_manager(using).create_user(
        "ana", password="pw", first_name='Ana "Quotes"', last_name="Ünïcödé\nsecond line"
    )
    ana.groups.add(coaches)
    ana.user_permissions.add(Permission.objects.db_manager(using).get(codename="view_exercise"))
    exercise = Exercise.objects.db_manager(using).create(
        name="Zercher Squat 🏋", muscle_group="quadriceps", equipment="barbell", notes="\t\\ \u2028"
    )
    LogEntry.objects.db_manager(using).create(
        user=ana,
        content_type=ContentType.objects.db_manager(using).get_for_model(Exercise),
        object_id=str(exercise.pk),
        object_repr=str(exercise),
        action_flag=ADDITION,
        change_message='[{"added": {}}]',
    )
    Session.objects.db_manager(using).create(
        session_key="k" * 32,
        session_data="e30:1abc",
        expire_date=db_datetime(dt.datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)),
    )
    lonely = Workout.objects.db_manager(using).create(date=dt.date(2001, 2, 3), notes="")
    WorkoutSet.objects.db_manager(using).create(
        workout=lonely, exercise=exercise, order=1, reps=1, weight=Decimal("9999.99"), rpe=None
    )
    BodyMetric.objects.db_manager(using).create(
        date=dt.date(1999, 12, 31), weight_kg=Decimal("0.01"), body_fat_percent=Decimal("100.0")
    )


def decoded(path: Path, *, compression: str | None = None, encrypted: bool = False) -> bytes:
    """The JSON text of a dump (decompressed, and decrypted with the current key); the format
    comes from its sidecar unless ``compression`` is given."""
    from safemigrate.conf import get_settings

    if compression is None:
        info = json.loads(path.with_name(path.name + ".dump-manifest.json").read_text())
        compression, encrypted = info["compression"], bool(info["encryption"])
    with path.open("rb") as f:
        reader = BackupReader(
            f,
            compression=compression,
            encrypted=encrypted,
            key=get_settings().encryption_key,
            name=path.name,
        )
        return reader.read()  # type: ignore[no-any-return]


def write_stored(path: Path, data: bytes, *, compression: str) -> None:
    """Store ``data`` as a dump file (no sidecar touched)."""
    with path.open("wb") as f:
        writer = BackupWriter(f, compression=compression)
        writer.write(data)
        writer.finish()


def rewrite_dump(
    path: Path,
    edit: Callable[[list[bytes]], list[bytes]] = lambda lines: lines,
    manifest: Callable[[dict[str, Any]], None] = lambda info: None,
) -> None:
    """Change a dump's lines (and manifest) and store it again with matching checksums: a
    well-formed file that says something wrong."""
    sidecar = path.with_name(path.name + ".dump-manifest.json")
    info = json.loads(sidecar.read_text())
    data = b"\n".join(reseal(edit(decoded(path).split(b"\n"))))
    with path.open("wb") as f:
        writer = BackupWriter(f, compression=info["compression"])
        writer.write(data)
        stats = writer.finish()
    info.update(sha256=stats.sha256, size=stats.size, raw_sha256=stats.raw_sha256, raw_size=stats.raw_size)
    manifest(info)
    sidecar.write_text(json.dumps(info))


def reseal(lines: list[bytes]) -> list[bytes]:
    """Make the dump's end record match edited lines again (row counts and the hash before it)."""
    import hashlib

    for n, line in enumerate(lines):
        obj = json.loads(line.rstrip(b",")) if line.startswith(b"{") else None
        if obj and obj.get("safemigrate_dump", {}).get("part") == "end":
            rows: dict[str, int] = {}
            for before in lines[1:n]:
                item = json.loads(before.rstrip(b","))
                if "safemigrate_dump" not in item:
                    rows[item["model"]] = rows.get(item["model"], 0) + 1
            old = obj["safemigrate_dump"]["rows"]
            obj["safemigrate_dump"]["rows"] = {label: rows.get(label, 0) for label in old} | rows
            obj["safemigrate_dump"]["sha256"] = hashlib.sha256(
                b"".join(x + b"\n" for x in lines[:n])
            ).hexdigest()
            lines[n] = json.dumps(obj).encode()
    return lines


def edit_object(model: str, index: int, change: Callable[[dict[str, Any]], None]):
    """An ``edit`` for rewrite_dump that changes the index-th object of ``model``."""

    def edit(lines: list[bytes]) -> list[bytes]:
        seen = 0
        for n, line in enumerate(lines):
            if line.startswith(b'{"model":"' + model.encode() + b'"'):
                if seen == index:
                    comma = line.endswith(b",")
                    obj = json.loads(line.rstrip(b","))
                    change(obj)
                    lines[n] = json.dumps(obj, ensure_ascii=False).encode() + (b"," if comma else b"")
                    return lines
                seen += 1
        raise AssertionError(f"no {model} object #{index} in the dump")

    return edit


def table_rows(models: tuple[str, ...] = TRACKER, using: str = "default") -> dict[str, list[tuple]]:
    """Every row of the given models through the ORM, in pk order."""
    from django.apps import apps

    return {
        label: list(apps.get_model(label)._base_manager.using(using).order_by("pk").values_list())
        for label in models
    }
