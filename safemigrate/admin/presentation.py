"""What the admin's pages share: the chart of backups, inline code in messages, and the admin's
own 403 page that names the missing permission."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from safemigrate.models import Backup, MigrationRun
from safemigrate.units import human_size

CHART_BACKUPS = 40
"""How many of the newest backups the change list's chart shows."""


def inline_code(text: str) -> SafeString:
    """``text`` escaped, with its markdown `backticks` shown as <code> (the checks' hints use them)."""
    return mark_safe(re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text)))  # noqa: S308 - escaped first


class MissingPermission(PermissionDenied):
    """PermissionDenied that names the permission, for the admin's own 403 page."""

    def __init__(self, perm: str, *, superuser: bool = False) -> None:
        super().__init__(perm)
        self.perm = perm
        self.superuser = superuser


def permission_denied_page(
    request: HttpRequest, admin_site: admin.AdminSite, *, perm: str, superuser: bool = False
) -> TemplateResponse:
    """The admin's own 403 page, saying which permission is missing (not Django's bare 403)."""
    from django.contrib.auth.models import Permission

    app_label, codename = perm.split(".", 1)
    found = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
    context = {
        **admin_site.each_context(request),
        "title": _("Permission needed"),
        "subtitle": None,
        "perm": perm,
        "perm_name": found.name if found else perm,
        "superuser": superuser,
    }
    request.current_app = admin_site.name
    return TemplateResponse(request, "admin/safemigrate/permission_denied.html", context, status=403)


def local_time(value: datetime, pattern: str) -> str:
    """``value`` in the current time zone as ``pattern``, the full ISO time in the tooltip."""
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    return format_html('<span title="{}">{}</span>', local.isoformat(), format(local, pattern))


class ReadOnlyLogMixin:
    """A list nobody adds to or edits (it mirrors files); the database column only when there are
    several databases."""

    def get_list_display(self, request: HttpRequest) -> list[Any]:
        columns = list(super().get_list_display(request))  # type: ignore[misc]
        if len(connections.databases) == 1:
            columns.remove("database")  # one database: the column says nothing
        return columns

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PermissionPageMixin:
    """Django's own admin views (list, change, add, delete, history) answer a missing permission
    with the admin's 403 page too."""

    admin_site: admin.AdminSite
    opts: Any

    def _denied(self, request: HttpRequest, action: str, exc: PermissionDenied) -> TemplateResponse:
        if isinstance(exc, MissingPermission):
            return permission_denied_page(request, self.admin_site, perm=exc.perm, superuser=exc.superuser)
        perm = f"{self.opts.app_label}.{action}_{self.opts.model_name}"
        return permission_denied_page(request, self.admin_site, perm=perm)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().changelist_view(request, extra_context)  # type: ignore[misc,no-any-return]
        except PermissionDenied as exc:
            return self._denied(request, "view", exc)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)  # type: ignore[misc,no-any-return]
        except PermissionDenied as exc:
            return self._denied(request, "view" if object_id else "add", exc)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)  # type: ignore[misc,no-any-return]
        except PermissionDenied as exc:
            return self._denied(request, "delete", exc)

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().history_view(request, object_id, extra_context)  # type: ignore[misc,no-any-return]
        except PermissionDenied as exc:
            return self._denied(request, "view", exc)


def backup_chart(*, limit: int = CHART_BACKUPS) -> dict[str, Any] | None:
    """Geometry for the change list's inline SVG: bar height = size, colour = outcome."""
    backups = list(Backup.objects.order_by("-created", "-id")[:limit])[::-1]
    if not backups:
        return None
    outcomes: dict[str, str] = {}
    runs = MigrationRun.objects.filter(backup_name__in=[b.name for b in backups])
    for status, name in runs.order_by("-started", "-id").values_list("status", "backup_name"):
        outcomes.setdefault(name, status)
    width, height, top, left, gap = 720, 120, 14, 4, 2
    step = (width - left) / max(len(backups), 12)
    biggest = max(b.size for b in backups) or 1
    bars = []
    Status = MigrationRun.Status
    bad_runs = (Status.ROLLED_BACK, Status.FAILED)
    for i, b in enumerate(backups):
        h = max(2.0, (height - top) * b.size / biggest)
        state = (
            "missing"
            if not b.on_disk
            else "verified"
            if b.verified
            else "failed"
            if b.verification_failed
            else "unverified"
        )
        run = outcomes.get(b.name)
        label = f"{b.created:%Y-%m-%d %H:%M} {b.reason}: {human_size(b.size)}, {state}"
        if b.pinned:
            label += ", pinned"
        if run:
            label += f", migration {run.replace('_', ' ')}"
        bars.append(
            {
                "x": round(left + i * step, 1),
                "y": round(height - h, 1),
                "w": round(max(step - gap, 1), 1),
                "h": round(h, 1),
                "cx": round(left + i * step + (step - gap) / 2, 1),
                "cy": round(height - h - 5, 1),
                "state": state,
                "pinned": b.pinned,
                "run": "ok" if run == Status.APPLIED else "bad" if run in bad_runs else "",
                "label": label,
            }
        )
    return {
        "width": width,
        "height": height + 16,
        "baseline": height,
        "bars": bars,
        "biggest": human_size(biggest),
        "first": f"{backups[0].created:%Y-%m-%d}",
        "last": f"{backups[-1].created:%Y-%m-%d}",
        "generated": datetime.now(UTC),
    }
