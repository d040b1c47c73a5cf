"""The demo catalogue used by ``seed_demo``: real exercises and well-known programs.

Weights are the working weights (kg) of a fictional intermediate lifter at the end of the demo
period; ``step`` is the smallest sensible jump for the equipment (plates, dumbbell pairs, pins).
"""

from __future__ import annotations

from dataclasses import dataclass

from fitnessdb.tracker.models import Equipment, MuscleGroup


@dataclass(frozen=True)
class DemoExercise:
    name: str
    muscle_group: str
    equipment: str
    working_kg: float
    step: float
    notes: str = ""


@dataclass(frozen=True)
class DemoProgram:
    name: str
    description: str
    # Training days: (day name, ((exercise name, target sets, target reps), ...)).
    days: tuple[tuple[str, tuple[tuple[str, int, int], ...]], ...]


M, E = MuscleGroup, Equipment

EXERCISES: tuple[DemoExercise, ...] = (
    # Barbell compounds
    DemoExercise("Back Squat", M.QUADRICEPS, E.BARBELL, 110, 2.5, "High bar, below parallel."),
    DemoExercise("Front Squat", M.QUADRICEPS, E.BARBELL, 85, 2.5, "Clean grip, elbows high."),
    DemoExercise("Deadlift", M.BACK, E.BARBELL, 150, 2.5, "Conventional stance."),
    DemoExercise("Romanian Deadlift", M.HAMSTRINGS, E.BARBELL, 100, 2.5),
    DemoExercise("Bench Press", M.CHEST, E.BARBELL, 85, 2.5, "Pause the first rep."),
    DemoExercise("Overhead Press", M.SHOULDERS, E.BARBELL, 52.5, 2.5, "Strict, no leg drive."),
    DemoExercise("Barbell Row", M.BACK, E.BARBELL, 75, 2.5, "Pendlay style, from the floor."),
    DemoExercise("Hip Thrust", M.GLUTES, E.BARBELL, 120, 5),
    DemoExercise("Barbell Curl", M.BICEPS, E.BARBELL, 35, 2.5),
    DemoExercise("Skull Crusher", M.TRICEPS, E.BARBELL, 30, 2.5, "EZ bar."),
    # Dumbbells and kettlebells
    DemoExercise("Incline Dumbbell Press", M.CHEST, E.DUMBBELL, 30, 2, "Weight per dumbbell."),
    DemoExercise("Dumbbell Shoulder Press", M.SHOULDERS, E.DUMBBELL, 24, 2),
    DemoExercise("Lateral Raise", M.SHOULDERS, E.DUMBBELL, 10, 1),
    DemoExercise("Dumbbell Row", M.BACK, E.DUMBBELL, 36, 2, "One arm, knee on bench."),
    DemoExercise("Hammer Curl", M.BICEPS, E.DUMBBELL, 16, 2),
    DemoExercise("Bulgarian Split Squat", M.QUADRICEPS, E.DUMBBELL, 20, 2),
    DemoExercise("Wrist Curl", M.FOREARMS, E.DUMBBELL, 12, 1),
    DemoExercise("Goblet Squat", M.QUADRICEPS, E.KETTLEBELL, 28, 4),
    DemoExercise("Kettlebell Swing", M.GLUTES, E.KETTLEBELL, 32, 4, "Russian swing."),
    # Machines and cables
    DemoExercise("Leg Press", M.QUADRICEPS, E.MACHINE, 200, 10),
    DemoExercise("Leg Extension", M.QUADRICEPS, E.MACHINE, 60, 5),
    DemoExercise("Lying Leg Curl", M.HAMSTRINGS, E.MACHINE, 45, 5),
    DemoExercise("Standing Calf Raise", M.CALVES, E.MACHINE, 90, 5),
    DemoExercise("Seated Calf Raise", M.CALVES, E.MACHINE, 50, 5),
    DemoExercise("Lat Pulldown", M.BACK, E.CABLE, 70, 5),
    DemoExercise("Seated Cable Row", M.BACK, E.CABLE, 70, 5),
    DemoExercise("Face Pull", M.SHOULDERS, E.CABLE, 25, 2.5, "Rope, pull to the forehead."),
    DemoExercise("Triceps Pushdown", M.TRICEPS, E.CABLE, 35, 2.5),
    DemoExercise("Cable Crossover", M.CHEST, E.CABLE, 20, 2.5),
    # Bodyweight and bands (weight = added load)
    DemoExercise("Pull-up", M.BACK, E.BODYWEIGHT, 10, 2.5, "Weight is added load."),
    DemoExercise("Dip", M.TRICEPS, E.BODYWEIGHT, 15, 2.5, "Weight is added load."),
    DemoExercise("Push-up", M.CHEST, E.BODYWEIGHT, 0, 0),
    DemoExercise("Hanging Leg Raise", M.CORE, E.BODYWEIGHT, 0, 0),
    DemoExercise("Ab Wheel Rollout", M.CORE, E.OTHER, 0, 0),
    DemoExercise("Band Pull-Apart", M.SHOULDERS, E.BAND, 0, 0),
)

PROGRAMS: tuple[DemoProgram, ...] = (
    DemoProgram(
        "5x5 Strength",
        "Three sessions a week alternating workout A (squat, bench, row) and B (squat, "
        "overhead press, deadlift). Add 2.5 kg whenever all reps are completed.",
        (
            ("Workout A", (("Back Squat", 5, 5), ("Bench Press", 5, 5), ("Barbell Row", 5, 5))),
            (
                "Workout B",
                (("Back Squat", 5, 5), ("Overhead Press", 5, 5), ("Deadlift", 1, 5)),
            ),
        ),
    ),
    DemoProgram(
        "Push/Pull/Legs",
        "Push, pull and leg days in rotation, each starting with a heavy compound lift "
        "followed by hypertrophy work.",
        (
            (
                "Push",
                (
                    ("Bench Press", 4, 6),
                    ("Overhead Press", 3, 8),
                    ("Incline Dumbbell Press", 3, 10),
                    ("Lateral Raise", 3, 15),
                    ("Triceps Pushdown", 3, 12),
                ),
            ),
            (
                "Pull",
                (
                    ("Deadlift", 3, 5),
                    ("Pull-up", 4, 8),
                    ("Seated Cable Row", 3, 10),
                    ("Face Pull", 3, 15),
                    ("Barbell Curl", 3, 10),
                ),
            ),
            (
                "Legs",
                (
                    ("Back Squat", 4, 6),
                    ("Romanian Deadlift", 3, 8),
                    ("Leg Press", 3, 12),
                    ("Lying Leg Curl", 3, 12),
                    ("Standing Calf Raise", 4, 12),
                ),
            ),
        ),
    ),
    DemoProgram(
        "Upper/Lower Hypertrophy",
        "Four days a week: upper and lower body alternate, moderate loads, 8-15 reps.",
        (
            (
                "Upper",
                (
                    ("Incline Dumbbell Press", 4, 10),
                    ("Lat Pulldown", 4, 10),
                    ("Dumbbell Shoulder Press", 3, 10),
                    ("Dumbbell Row", 3, 10),
                    ("Cable Crossover", 3, 12),
                    ("Skull Crusher", 3, 12),
                    ("Hammer Curl", 3, 12),
                ),
            ),
            (
                "Lower",
                (
                    ("Front Squat", 4, 8),
                    ("Hip Thrust", 3, 10),
                    ("Bulgarian Split Squat", 3, 10),
                    ("Leg Extension", 3, 15),
                    ("Seated Calf Raise", 4, 15),
                    ("Hanging Leg Raise", 3, 12),
                ),
            ),
        ),
    ),
    DemoProgram(
        "Full Body Beginner",
        "Two or three sessions a week with little equipment: a kettlebell, a pair of dumbbells and a band.",
        (
            (
                "Full body",
                (
                    ("Goblet Squat", 3, 10),
                    ("Push-up", 3, 12),
                    ("Dumbbell Row", 3, 10),
                    ("Kettlebell Swing", 3, 15),
                    ("Band Pull-Apart", 3, 20),
                    ("Ab Wheel Rollout", 3, 8),
                ),
            ),
        ),
    ),
)

# Ad-hoc sessions outside any program (a hotel gym on a trip).
AD_HOC_DAY: tuple[tuple[str, int, int], ...] = (
    ("Push-up", 3, 15),
    ("Goblet Squat", 3, 12),
    ("Dumbbell Row", 3, 12),
    ("Dip", 3, 10),
    ("Wrist Curl", 2, 15),
)
