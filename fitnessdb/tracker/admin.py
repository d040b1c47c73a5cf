"""Admin for the training log: every model, with inlines, filters and per-row totals."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from fitnessdb.tracker.models import (
    BodyMetric,
    Exercise,
    Program,
    ProgramExercise,
    Workout,
    WorkoutSet,
)
from fitnessdb.tracker.services import with_totals


def _kg(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:,.0f} kg"


@admin.register(Exercise)
class ExerciseAdmin(admin.ModelAdmin):
    list_display = ("name", "muscle_group", "equipment", "modified")
    list_filter = ("muscle_group", "equipment")
    search_fields = ("name", "notes")
    readonly_fields = ("created", "modified")
    fieldsets = (
        (None, {"fields": ("name", "muscle_group", "equipment", "notes")}),
        (_("History"), {"fields": ("created", "modified"), "classes": ("collapse",)}),
    )


class ProgramExerciseInline(admin.TabularInline):
    model = ProgramExercise
    fields = ("order", "exercise", "target_sets", "target_reps")
    ordering = ("order",)
    autocomplete_fields = ("exercise",)
    extra = 1

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        # Each row's title is its __str__, which names the exercise.
        return super().get_queryset(request).select_related("exercise")


@admin.register(Program)
class ProgramAdmin(admin.ModelAdmin):
    list_display = ("name", "exercise_count", "workout_count", "modified")
    search_fields = ("name", "description")
    readonly_fields = ("created", "modified")
    fields = ("name", "description", "created", "modified")
    inlines = (ProgramExerciseInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Program]:
        # Subqueries, not two joined Counts: those would multiply each other's rows.
        workouts = (
            Workout.objects.filter(program=OuterRef("pk"))
            .order_by()
            .values("program")
            .annotate(count=Count("pk"))
            .values("count")
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                exercise_count=Count("program_exercises"),
                workout_count=Coalesce(Subquery(workouts, output_field=IntegerField()), Value(0)),
            )
        )

    @admin.display(description=_("exercises"), ordering="exercise_count")
    def exercise_count(self, obj: Program) -> int:
        return obj.exercise_count

    @admin.display(description=_("workouts"), ordering="workout_count")
    def workout_count(self, obj: Program) -> int:
        return obj.workout_count


class WorkoutSetInline(admin.TabularInline):
    model = WorkoutSet
    fields = ("order", "exercise", "reps", "weight", "rpe")
    ordering = ("order",)
    autocomplete_fields = ("exercise",)
    extra = 1

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        # Each row's title is its __str__, which names the exercise.
        return super().get_queryset(request).select_related("exercise")


@admin.register(Workout)
class WorkoutAdmin(admin.ModelAdmin):
    list_display = ("date", "program", "set_count", "total_volume", "notes_excerpt")
    list_display_links = ("date",)
    list_filter = ("program",)
    list_select_related = ("program",)
    date_hierarchy = "date"
    search_fields = ("notes", "program__name")
    autocomplete_fields = ("program",)
    readonly_fields = ("created", "modified")
    fields = ("date", "program", "notes", "created", "modified")
    inlines = (WorkoutSetInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workout]:
        return with_totals(super().get_queryset(request))

    @admin.display(description=_("sets"), ordering="set_count")
    def set_count(self, obj: Workout) -> int:
        return obj.set_count

    @admin.display(description=_("volume"), ordering="total_volume")
    def total_volume(self, obj: Workout) -> str:
        return _kg(obj.total_volume)

    @admin.display(description=_("notes"))
    def notes_excerpt(self, obj: Workout) -> str:
        return obj.notes if len(obj.notes) <= 60 else f"{obj.notes[:59]}…"


@admin.register(WorkoutSet)
class WorkoutSetAdmin(admin.ModelAdmin):
    list_display = ("workout", "order", "exercise", "reps", "weight", "rpe", "volume")
    list_filter = ("exercise__muscle_group", "exercise")
    list_select_related = ("workout__program", "exercise")
    search_fields = ("exercise__name", "workout__notes")
    autocomplete_fields = ("workout", "exercise")
    readonly_fields = ("created", "modified")
    fields = ("workout", "order", "exercise", "reps", "weight", "rpe", "created", "modified")

    @admin.display(description=_("volume"))
    def volume(self, obj: WorkoutSet) -> str:
        return _kg(obj.volume)


@admin.register(BodyMetric)
class BodyMetricAdmin(admin.ModelAdmin):
    list_display = ("date", "weight_kg", "body_fat_percent", "notes")
    date_hierarchy = "date"
    search_fields = ("notes",)
    readonly_fields = ("created", "modified")
    fields = ("date", "weight_kg", "body_fat_percent", "notes", "created", "modified")
