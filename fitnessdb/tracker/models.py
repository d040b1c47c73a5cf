"""Fitness domain models: data and database constraints only, no workflow (see services.py)."""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _


def _number(value: Decimal | float | int | None) -> str:
    """A quantity without trailing zeros: Decimal("80.00") -> "80", Decimal("82.50") -> "82.5"."""
    if value is None:
        return "?"
    return f"{Decimal(str(value)).normalize():f}"


class TimeStampedModel(models.Model):
    """Abstract base adding ``created`` and ``modified`` timestamps maintained by Django."""

    created = models.DateTimeField(_("created"), auto_now_add=True, editable=False)
    modified = models.DateTimeField(_("modified"), auto_now=True, editable=False)

    class Meta:
        abstract = True


class MuscleGroup(models.TextChoices):
    CHEST = "chest", _("Chest")
    BACK = "back", _("Back")
    SHOULDERS = "shoulders", _("Shoulders")
    BICEPS = "biceps", _("Biceps")
    TRICEPS = "triceps", _("Triceps")
    FOREARMS = "forearms", _("Forearms")
    QUADRICEPS = "quadriceps", _("Quadriceps")
    HAMSTRINGS = "hamstrings", _("Hamstrings")
    GLUTES = "glutes", _("Glutes")
    CALVES = "calves", _("Calves")
    CORE = "core", _("Core")
    FULL_BODY = "full_body", _("Full body")


class Equipment(models.TextChoices):
    BARBELL = "barbell", _("Barbell")
    DUMBBELL = "dumbbell", _("Dumbbell")
    KETTLEBELL = "kettlebell", _("Kettlebell")
    MACHINE = "machine", _("Machine")
    CABLE = "cable", _("Cable")
    BODYWEIGHT = "bodyweight", _("Bodyweight")
    BAND = "band", _("Resistance band")
    OTHER = "other", _("Other")


class Exercise(TimeStampedModel):
    """A movement such as "Back Squat"; names are unique regardless of case."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    muscle_group = models.CharField(
        _("muscle group"), max_length=20, choices=MuscleGroup.choices, db_index=True
    )
    equipment = models.CharField(_("equipment"), max_length=20, choices=Equipment.choices)
    notes = models.TextField(_("notes"), blank=True)

    class Meta:
        verbose_name = _("exercise")
        verbose_name_plural = _("exercises")
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="tracker_exercise_name_ci_unique",
                violation_error_message=_("An exercise with this name already exists."),
            ),
            models.CheckConstraint(
                condition=~Q(name=""),
                name="tracker_exercise_name_not_empty",
            ),
            models.CheckConstraint(
                condition=Q(muscle_group__in=MuscleGroup.values),
                name="tracker_exercise_muscle_group_valid",
            ),
            models.CheckConstraint(
                condition=Q(equipment__in=Equipment.values),
                name="tracker_exercise_equipment_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Program(TimeStampedModel):
    """A training plan: an ordered list of exercises with target sets and reps."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True)

    class Meta:
        verbose_name = _("program")
        verbose_name_plural = _("programs")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=~Q(name=""), name="tracker_program_name_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name


class ProgramExercise(TimeStampedModel):
    """One exercise at one position in a program, with its targets."""

    program = models.ForeignKey(
        Program,
        on_delete=models.CASCADE,
        related_name="program_exercises",
        verbose_name=_("program"),
        # The (program, order) unique constraint's index serves lookups by program.
        db_index=False,
    )
    exercise = models.ForeignKey(
        Exercise,
        on_delete=models.PROTECT,
        related_name="program_exercises",
        verbose_name=_("exercise"),
    )
    order = models.PositiveSmallIntegerField(_("order"))
    target_sets = models.PositiveSmallIntegerField(
        _("target sets"), default=3, validators=[MinValueValidator(1)]
    )
    target_reps = models.PositiveSmallIntegerField(
        _("target reps"), default=10, validators=[MinValueValidator(1)]
    )

    class Meta:
        verbose_name = _("program exercise")
        verbose_name_plural = _("program exercises")
        ordering = ["order"]
        constraints = [
            models.UniqueConstraint(
                fields=["program", "order"],
                name="tracker_programexercise_unique_order",
                violation_error_message=_("This program already has an exercise at this order."),
            ),
            models.CheckConstraint(
                condition=Q(target_sets__gte=1),
                name="tracker_programexercise_target_sets_positive",
            ),
            models.CheckConstraint(
                condition=Q(target_reps__gte=1),
                name="tracker_programexercise_target_reps_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.order}. {self.exercise} {self.target_sets}×{self.target_reps}"


class Workout(TimeStampedModel):
    """A training session on a date, optionally following a program."""

    date = models.DateField(_("date"), db_index=True)
    program = models.ForeignKey(
        Program,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="workouts",
        verbose_name=_("program"),
    )
    notes = models.TextField(_("notes"), blank=True)

    class Meta:
        verbose_name = _("workout")
        verbose_name_plural = _("workouts")
        ordering = ["-date", "-pk"]

    def __str__(self) -> str:
        # Uses program_id first so a workout without a program never queries.
        if self.program_id is None:
            return _("Workout on %(date)s") % {"date": self.date.isoformat()}
        return f"{self.date.isoformat()} · {self.program}"


class WorkoutSet(TimeStampedModel):
    """One performed set: an exercise done for some reps at some weight, optionally with RPE."""

    workout = models.ForeignKey(
        Workout,
        on_delete=models.CASCADE,
        related_name="sets",
        verbose_name=_("workout"),
        # The (workout, order) unique constraint's index serves lookups by workout; one index
        # less keeps bulk inserts of a million sets fast.
        db_index=False,
    )
    exercise = models.ForeignKey(
        Exercise,
        on_delete=models.PROTECT,
        related_name="workout_sets",
        verbose_name=_("exercise"),
    )
    order = models.PositiveSmallIntegerField(_("order"))
    reps = models.PositiveSmallIntegerField(_("reps"), validators=[MinValueValidator(1)])
    weight = models.DecimalField(
        _("weight (kg)"),
        max_digits=6,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("Load in kilograms; 0 for bodyweight exercises without added load."),
    )
    rpe = models.DecimalField(
        _("RPE"),
        max_digits=3,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("1")), MaxValueValidator(Decimal("10"))],
        help_text=_("Rate of perceived exertion, 1–10 (optional)."),
    )

    class Meta:
        verbose_name = _("workout set")
        verbose_name_plural = _("workout sets")
        ordering = ["workout_id", "order"]
        constraints = [
            models.UniqueConstraint(
                fields=["workout", "order"],
                name="tracker_workoutset_unique_order",
                violation_error_message=_("This workout already has a set at this order."),
            ),
            models.CheckConstraint(
                condition=Q(reps__gte=1),
                name="tracker_workoutset_reps_positive",
                violation_error_message=_("Reps must be at least 1."),
            ),
            models.CheckConstraint(
                condition=Q(weight__gte=0),
                name="tracker_workoutset_weight_non_negative",
                violation_error_message=_("Weight cannot be negative."),
            ),
            models.CheckConstraint(
                condition=Q(rpe__isnull=True) | Q(rpe__gte=1, rpe__lte=10),
                name="tracker_workoutset_rpe_range",
                violation_error_message=_("RPE must be between 1 and 10."),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.exercise} {self.reps}×{_number(self.weight)} kg"

    @property
    def volume(self) -> Decimal:
        """Training volume of the set: reps × weight (kg)."""
        return self.reps * self.weight


class BodyMetric(TimeStampedModel):
    """A body measurement on a date (at most one per day)."""

    date = models.DateField(_("date"), unique=True)
    weight_kg = models.DecimalField(
        _("body weight (kg)"),
        max_digits=5,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01"))],
    )
    body_fat_percent = models.DecimalField(
        _("body fat (%)"),
        max_digits=4,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
    )
    notes = models.TextField(_("notes"), blank=True)

    class Meta:
        verbose_name = _("body metric")
        verbose_name_plural = _("body metrics")
        ordering = ["-date"]
        constraints = [
            models.CheckConstraint(
                condition=Q(weight_kg__gt=0),
                name="tracker_bodymetric_weight_positive",
                violation_error_message=_("Body weight must be greater than 0."),
            ),
            models.CheckConstraint(
                condition=Q(body_fat_percent__isnull=True)
                | Q(body_fat_percent__gte=0, body_fat_percent__lte=100),
                name="tracker_bodymetric_body_fat_range",
                violation_error_message=_("Body fat must be between 0 and 100 %."),
            ),
        ]

    def __str__(self) -> str:
        text = f"{self.date.isoformat()}: {_number(self.weight_kg)} kg"
        if self.body_fat_percent is not None:
            text += f", {_number(self.body_fat_percent)} % body fat"
        return text
