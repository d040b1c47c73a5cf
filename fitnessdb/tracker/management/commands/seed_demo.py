"""``manage.py seed_demo``: load realistic demo data, optionally with a large generated history."""

from __future__ import annotations

from argparse import ArgumentParser, RawDescriptionHelpFormatter
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from fitnessdb.tracker import demo_data
from fitnessdb.tracker.demo import (
    BULK_TAG,
    DEMO_TAG,
    DEMO_WEEKS,
    ProgressCallback,
    generate_bulk_workouts,
    seed_demo_data,
)
from fitnessdb.tracker.services import count_rows

#: --scale presets: (generated workouts, sets per workout).
SCALES: dict[str, tuple[int, int]] = {
    "small": (1_000, 10),
    "medium": (10_000, 10),
    "large": (50_000, 10),
    "huge": (100_000, 10),
}
DEFAULT_SETS_PER_WORKOUT = 10
MAX_SETS_PER_WORKOUT = 100


class Command(BaseCommand):
    help = (
        f"Load realistic demo data: {len(demo_data.EXERCISES)} real exercises, "
        f"{len(demo_data.PROGRAMS)} programs, the last {DEMO_WEEKS} weeks of workouts with\n"
        "progressive overload, and a body-weight trend.\n\n"
        "Safe to run again: exercises and programs are only created when missing (existing rows\n"
        f'are never overwritten), and the dated demo rows (notes starting with "{DEMO_TAG}") are\n'
        "brought back in line with the plan instead of being duplicated.\n\n"
        "For load testing, --scale or --workouts add generated workouts (notes starting with\n"
        f'"{BULK_TAG}") spread over the ten years before the demo weeks. Re-running tops up to\n'
        "the target and never duplicates: the same numbers again do nothing, a smaller\n"
        "--workouts deletes the surplus (--workouts 0 removes them all), and a different\n"
        "--sets-per-workout regenerates them. Presets: "
        + ", ".join(f"{name} = {w:,} workouts × {s}" for name, (w, s) in SCALES.items())
        + " sets."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = RawDescriptionHelpFormatter
        return parser

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            choices=tuple(connections),
            help='Nominates a database to seed. Defaults to the "default" database.',
        )
        parser.add_argument(
            "--scale",
            choices=tuple(SCALES),
            help="Also generate a preset amount of workouts (huge = 1,000,000 sets).",
        )
        parser.add_argument(
            "--workouts",
            type=int,
            metavar="N",
            help="Number of generated workouts to have (overrides the --scale preset).",
        )
        parser.add_argument(
            "--sets-per-workout",
            type=int,
            metavar="N",
            help=f"Sets in each generated workout (default {DEFAULT_SETS_PER_WORKOUT}).",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=42,
            help="Random seed; the same seed gives the same data (default 42).",
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Do nothing when the database already holds tracker data (run.sh: never re-seed "
            "over a user's edits).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=5000,
            metavar="N",
            help="Sets inserted per transaction when generating (default 5000).",
        )

    def handle(
        self,
        *args: Any,
        database: str,
        scale: str | None,
        workouts: int | None,
        sets_per_workout: int | None,
        seed: int,
        batch_size: int,
        verbosity: int,
        if_empty: bool = False,
        **options: Any,
    ) -> None:
        bulk = _bulk_target(scale, workouts, sets_per_workout)
        if batch_size < 1:
            raise CommandError(f"--batch-size must be 1 or more, got {batch_size}")
        try:
            if if_empty and any(vars(count_rows(using=database)).values()):
                if verbosity >= 1:
                    self.stdout.write(
                        f"Database {database!r} already holds tracker data: not seeding "
                        "(run seed_demo without --if-empty to refresh the demo data)."
                    )
                return
            seeded = seed_demo_data(using=database, seed=seed)
            if verbosity >= 1:
                self.stdout.write(
                    f"Demo catalogue and the last {DEMO_WEEKS} weeks: "
                    f"{seeded.exercises_created} exercises and {seeded.programs_created} programs "
                    f"created; workouts {seeded.workouts_created} created, "
                    f"{seeded.workouts_updated} updated, {seeded.workouts_deleted} deleted; "
                    f"body metrics {seeded.body_metrics_created} created, "
                    f"{seeded.body_metrics_updated} updated, "
                    f"{seeded.body_metrics_deleted} deleted."
                )
            if bulk is not None:
                target, per_workout = bulk
                if verbosity >= 1:
                    self.stdout.write(f"Generated workouts: target {target:,} with {per_workout} sets each…")
                result = generate_bulk_workouts(
                    workouts=target,
                    sets_per_workout=per_workout,
                    using=database,
                    seed=seed,
                    batch_size=batch_size,
                    progress=self._progress_printer() if verbosity >= 1 else None,
                )
                if verbosity >= 1:
                    self.stdout.write(
                        f"Generated workouts: {result.workouts_created:,} created "
                        f"({result.sets_created:,} sets), {result.workouts_deleted:,} deleted, "
                        f"{result.workouts_total:,} in total; {result.seconds:.1f}s."
                    )
            counts = count_rows(using=database)
        except DatabaseError as exc:
            raise CommandError(
                f"seed_demo failed on database {database!r}: {exc} "
                "(run `python manage.py migrate` first if tables are missing)"
            ) from exc
        if verbosity >= 1:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo data ready in {database!r}: {counts.exercises:,} exercises, "
                    f"{counts.programs:,} programs, {counts.workouts:,} workouts, "
                    f"{counts.sets:,} sets, {counts.body_metrics:,} body metrics."
                )
            )

    def _progress_printer(self) -> ProgressCallback:
        """A progress callback that prints a line at every 10 % step."""
        next_percent = 10

        def progress(done: int, total: int) -> None:
            nonlocal next_percent
            percent = 100 * done // total if total else 100
            if percent >= next_percent:
                self.stdout.write(f"  {percent:3d}% · {done:,}/{total:,} workouts")
                next_percent = percent // 10 * 10 + 10

        return progress


def _bulk_target(
    scale: str | None, workouts: int | None, sets_per_workout: int | None
) -> tuple[int, int] | None:
    """(workouts, sets per workout) to generate, or None; raises CommandError on bad numbers."""
    if scale is None and workouts is None:
        if sets_per_workout is not None:
            raise CommandError("--sets-per-workout needs --workouts N or --scale")
        return None
    preset_workouts, preset_sets = SCALES[scale] if scale else (0, DEFAULT_SETS_PER_WORKOUT)
    workouts = preset_workouts if workouts is None else workouts
    sets_per_workout = preset_sets if sets_per_workout is None else sets_per_workout
    if workouts < 0:
        raise CommandError(f"--workouts must be 0 or more, got {workouts}")
    if not 1 <= sets_per_workout <= MAX_SETS_PER_WORKOUT:
        raise CommandError(
            f"--sets-per-workout must be between 1 and {MAX_SETS_PER_WORKOUT}, got {sets_per_workout}"
        )
    return workouts, sets_per_workout
