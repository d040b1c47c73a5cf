"""The log of guarded migration runs: read-only, newest first, the error cut short in the list."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from safemigrate.admin.presentation import PermissionPageMixin, ReadOnlyLogMixin, local_time
from safemigrate.models import MigrationRun
from safemigrate.units import human_duration

ERROR_CHARS = 80
"""Longer errors are cut in the Migration runs list (the full text is in the tooltip and the run's page)."""

if TYPE_CHECKING:
    MigrationRunModelAdmin = admin.ModelAdmin[MigrationRun]
else:
    MigrationRunModelAdmin = admin.ModelAdmin


@admin.register(MigrationRun)
class MigrationRunAdmin(ReadOnlyLogMixin, PermissionPageMixin, MigrationRunModelAdmin):
    list_display = [
        "started_display",
        "database",
        "status_display",
        "duration_display",
        "plan_display",
        "backup_display",
        "error_display",
    ]
    list_filter = ["status", "database"]
    search_fields = ["error", "backup_name"]
    date_hierarchy = "started"
    fields = (
        "started",
        "finished",
        "duration_display",
        "database",
        "status",
        "rollback",
        "plan_list",
        "backup_display",
        "error",
        "host",
        "pid",
    )
    readonly_fields = fields

    def has_delete_permission(self, request: HttpRequest, obj: MigrationRun | None = None) -> bool:
        return False

    @admin.display(description=_("started"), ordering="started")
    def started_display(self, obj: MigrationRun) -> str:
        return local_time(obj.started, "%Y-%m-%d %H:%M:%S")

    @admin.display(description=_("status"), ordering="status")
    def status_display(self, obj: MigrationRun) -> str:
        bad = obj.status in (MigrationRun.Status.ROLLED_BACK, MigrationRun.Status.FAILED)
        css = (
            "safemigrate-bad"
            if bad
            else "safemigrate-ok"
            if obj.status == MigrationRun.Status.APPLIED
            else ""
        )
        if not obj.rollback or obj.status == MigrationRun.Status.APPLIED:
            return format_html('<span class="{}">{}</span>', css, obj.get_status_display())
        return format_html(
            '<span class="{}">{}</span><br><span class="safemigrate-quiet">{} {}</span>',
            css,
            obj.get_status_display(),
            _("by"),
            obj.get_rollback_display(),
        )

    @admin.display(description=_("plan"))
    def plan_display(self, obj: MigrationRun) -> str:
        plan = [str(step) for step in obj.plan or []]
        if not plan:
            return "-"
        more = format_html("<br>(+{} {})", len(plan) - 1, _("more")) if len(plan) > 1 else ""
        return format_html('<span title="{}">{}{}</span>', "\n".join(plan), plan[0], more)

    @admin.display(description=_("plan"))
    def plan_list(self, obj: MigrationRun) -> str:
        return format_html_join("", "<div>{}</div>", ((str(step),) for step in obj.plan or [])) or "-"

    @admin.display(description=_("duration"), ordering="duration")
    def duration_display(self, obj: MigrationRun) -> str:
        return human_duration(obj.duration)

    @admin.display(description=_("backup used"))
    def backup_display(self, obj: MigrationRun) -> str:
        if obj.backup_id is not None:
            url = reverse("admin:safemigrate_backup_change", args=[obj.backup_id])
            return format_html('<a href="{}">{}</a>', url, obj.backup_name or obj.backup_id)
        return obj.backup_name or "-"

    @admin.display(description=_("error"))
    def error_display(self, obj: MigrationRun) -> str:
        """Cut to ERROR_CHARS; the whole text is the tooltip and on the run's own page."""
        if not obj.error:
            return "-"
        if len(obj.error) <= ERROR_CHARS:
            return format_html('<span class="safemigrate-error">{}</span>', obj.error)
        url = reverse("admin:safemigrate_migrationrun_change", args=[obj.pk])
        return format_html(
            '<span class="safemigrate-error" title="{}">{}… <a href="{}">{}</a></span>',
            obj.error,
            obj.error[: ERROR_CHARS - 1].rstrip(),
            url,
            _("(full text)"),
        )
