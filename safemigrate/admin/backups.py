"""The backup catalogue: Back up now, Restore, Verify, Download, Pin and Delete.

Every button is a thin door into the library (the same functions the commands call), imported
when the button is used, so the admin's registration costs a ``manage.py`` start nothing. State
changes only on POST with CSRF, each view checks its permission itself (``admin_view`` checks
only staff), and an expected failure is a message and a redirect, never a 500.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
from datetime import UTC
from functools import update_wrapper
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import HASH_SESSION_KEY, get_user_model, logout
from django.contrib.sessions.backends.base import CreateError
from django.db import DatabaseError, connections, transaction
from django.db.models import QuerySet
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.cache import patch_cache_control
from django.utils.crypto import constant_time_compare
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from safemigrate.admin.presentation import (
    MissingPermission,
    PermissionPageMixin,
    ReadOnlyLogMixin,
    backup_chart,
    inline_code,
    local_time,
)
from safemigrate.apps import is_project_app
from safemigrate.conf import backup_dir_for, get_settings
from safemigrate.exceptions import SafeMigrateError
from safemigrate.models import Backup, MigrationRun
from safemigrate.units import human_duration, human_size

if TYPE_CHECKING:
    from safemigrate.health import Problem
    from safemigrate.manifest import Manifest


def _manifest(backup: Backup) -> Manifest:
    """The backup's sidecar manifest (the source of truth); BackupNotFound when it is gone."""
    from safemigrate.manifest import read_manifest

    return read_manifest(backup.manifest_path)


def _manifest_or_row(backup: Backup) -> Manifest:
    """The manifest, or one describing the catalogue row when the manifest is gone (for delete)."""
    from safemigrate.manifest import Manifest

    try:
        return _manifest(backup)
    except SafeMigrateError:
        return Manifest(
            name=backup.name,
            file=Path(backup.path).name,
            sha256=backup.sha256,
            size=backup.size,
            created=backup.created.isoformat(),
            reason=backup.reason,
            vendor=backup.vendor,
            database=backup.database,
            database_name="",
            compression=backup.compression,
            encryption=None,
            path=backup.manifest_path,
        )


_failures_seen: contextvars.ContextVar[dict[str, dict[str, Any]] | None] = contextvars.ContextVar(
    "safemigrate_offsite_failures", default=None
)


def _offsite_failures(alias: str) -> dict[str, Any]:
    """The status file's failed copies, read once per database for a whole list page."""
    from safemigrate.offsite import offsite_failures

    seen = _failures_seen.get()
    if seen is None:
        return offsite_failures(alias)
    if alias not in seen:
        seen[alias] = offsite_failures(alias)
    return seen[alias]


class BackupStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            ("missing", _("missing on disk")),
            ("pinned", _("pinned")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Backup]) -> QuerySet[Backup]:
        value = self.value()
        if value == "pinned":
            return queryset.filter(pinned=True)
        if value == "missing":
            missing = [pk for pk, p in queryset.values_list("pk", "path") if not Path(p).is_file()]
            return queryset.filter(pk__in=missing)
        return queryset


class VerificationFilter(admin.SimpleListFilter):
    """ok / failed / not verified: a failed verification is its own state, not "never verified"."""

    title = _("verification")
    parameter_name = "verification"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("ok", _("ok")), ("failed", _("failed")), ("none", _("not verified"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Backup]) -> QuerySet[Backup]:
        value = self.value()
        if value == "ok":
            return queryset.filter(verified=True)
        if value == "failed":
            return queryset.filter(verified=False, verification_failed_at__isnull=False)
        if value == "none":
            return queryset.filter(verified=False, verification_failed_at__isnull=True)
        return queryset


if TYPE_CHECKING:
    BackupModelAdmin = admin.ModelAdmin[Backup]
else:
    BackupModelAdmin = admin.ModelAdmin


@admin.register(Backup)
class BackupAdmin(ReadOnlyLogMixin, PermissionPageMixin, BackupModelAdmin):
    """Read-only: the catalogue mirrors the manifests; the buttons below change things."""

    # The state first (MISSING, FAILED, pinned at a glance), the long texts last and wrapped: the
    # list fits a 1366px laptop with the admin's sidebar and filters open.
    list_display = [
        "created_display",
        "verified_display",
        "on_disk_display",
        "pinned_display",
        "offsite_display",
        "reason",
        "database",
        "size_display",
        "migrations_head",
    ]
    list_display_links = ["created_display"]
    list_filter = [VerificationFilter, BackupStateFilter, "reason", "database"]
    search_fields = ["name", "sha256"]
    date_hierarchy = "created"
    list_per_page = 50
    fieldsets = [
        (None, {"fields": ["name", "path", "on_disk_display", "created", "reason", "database"]}),
        (
            _("File"),
            {
                "fields": [
                    "vendor",
                    "size_display",
                    "sha256",
                    "compression",
                    "encrypted",
                    "duration_display",
                ]
            },
        ),
        (
            _("State"),
            {
                "fields": [
                    "verified_display",
                    "verified_at",
                    "verification_failure_display",
                    "pinned_display",
                    "offsite_display",
                ]
            },
        ),
        (_("Contents"), {"fields": ["migrations_display", "row_counts_display", "json_dump"]}),
    ]
    readonly_fields = [
        "name",
        "path",
        "on_disk_display",
        "created",
        "reason",
        "database",
        "vendor",
        "size_display",
        "sha256",
        "compression",
        "encrypted",
        "duration_display",
        "verified_display",
        "verified_at",
        "verification_failure_display",
        "pinned_display",
        "offsite_display",
        "migrations_display",
        "row_counts_display",
        "json_dump",
    ]

    # --- columns -----------------------------------------------------------------------------
    @admin.display(description=_("created"), ordering="created")
    def created_display(self, obj: Backup) -> str:
        return local_time(obj.created, "%Y-%m-%d %H:%M")

    @admin.display(description=_("size"), ordering="size")
    def size_display(self, obj: Backup) -> str:
        """The size, and the format (compression, encryption) under it in small print."""
        return format_html(
            '<span title="{} bytes">{}</span><br><span class="safemigrate-quiet">{}</span>',
            f"{obj.size:,}",
            human_size(obj.size),
            self.format_display(obj),
        )

    @admin.display(description=_("duration"))
    def duration_display(self, obj: Backup) -> str:
        return human_duration(obj.duration)

    @admin.display(description=_("format"))
    def format_display(self, obj: Backup) -> str:
        return f"{obj.compression}{' + AES' if obj.encrypted else ''}"

    @admin.display(description=_("migrations"))
    def migrations_head(self, obj: Backup) -> str:
        """The latest migration of the project's own apps; every app's in the tooltip."""
        heads = {app: names[-1] for app, names in sorted(obj.migrations.items()) if names}
        if not heads:
            return "-"
        shown = [app for app in heads if is_project_app(app)][:2] or list(heads)[:2]
        more = len(heads) - len(shown)
        return format_html(
            '<span title="{}">{}{}</span>',
            "\n".join(f"{app}: {name}" for app, name in heads.items()),
            format_html_join(mark_safe("<br>"), "{}.{}", ((a, heads[a]) for a in shown)),
            format_html("<br>+{} {}", more, _("more apps")) if more else "",
        )

    @admin.display(description=_("verified"), ordering="verified_at")
    def verified_display(self, obj: Backup) -> str:
        if obj.verified:
            when = f"{obj.verified_at:%Y-%m-%d %H:%M:%S %Z}" if obj.verified_at else ""
            return format_html('<span class="safemigrate-ok" title="{}">{}</span>', when, _("yes"))
        if obj.verification_failed:
            return format_html(
                '<strong class="safemigrate-bad safemigrate-failed" title="{}">{}</strong>',
                f"{obj.verification_failed_at:%Y-%m-%d %H:%M:%S %Z}: {obj.verification_error}",
                _("FAILED"),
            )
        return format_html('<span class="safemigrate-quiet">{}</span>', _("not yet"))

    @admin.display(description=_("verification failure"))
    def verification_failure_display(self, obj: Backup) -> str:
        if not obj.verification_failed:
            return "-"
        return format_html(
            '<strong class="safemigrate-bad">{}</strong> {}<div class="safemigrate-error">{}</div>',
            _("failed"),
            f"{obj.verification_failed_at:%Y-%m-%d %H:%M:%S %Z}",
            obj.verification_error,
        )

    @admin.display(description=_("on disk"))
    def on_disk_display(self, obj: Backup) -> str:
        if obj.on_disk:
            return format_html('<span class="safemigrate-ok">{}</span>', _("yes"))
        return format_html('<strong class="safemigrate-bad safemigrate-missing">{}</strong>', _("MISSING"))

    @admin.display(description=_("pinned"), ordering="pinned")
    def pinned_display(self, obj: Backup) -> str:
        """Pinned for good, or until when (the pre-migration backup's automatic pin)."""
        until = obj.pinned_until
        if obj.pinned or until is None or until <= timezone.now():
            return str(_("yes")) if obj.pinned else "-"
        # Shown in UTC, as the manifest and `backups` write it.
        utc = (until if timezone.is_aware(until) else timezone.make_aware(until)).astimezone(UTC)
        return format_html('<span title="{}">{} {}</span>', utc.isoformat(), _("until"), f"{utc:%Y-%m-%d}")

    @admin.display(description=_("off-site"))
    def offsite_display(self, obj: Backup) -> str:
        """copied / failed / not copied (safemigrate.offsite); "-" without SAFEMIGRATE_STORAGE."""
        if obj.offsite_copied:
            state = "copied"
        elif not get_settings().storage:
            return "-"
        else:
            state = "failed" if obj.name in _offsite_failures(obj.database) else "not copied"
        css = {"copied": "safemigrate-ok", "failed": "safemigrate-bad"}.get(state, "")
        return format_html('<span class="{}">{}</span>', css, _(state))

    @admin.display(description=_("applied migrations"))
    def migrations_display(self, obj: Backup) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((app, names[-1], len(names)) for app, names in sorted(obj.migrations.items()) if names),
        )
        return format_html(
            "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>",
            _("app"),
            _("latest"),
            _("count"),
            rows,
        )

    @admin.display(description=_("row counts"))
    def row_counts_display(self, obj: Backup) -> str:
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", sorted(obj.row_counts.items()))
        return format_html(
            "<table><thead><tr><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>",
            _("table"),
            _("rows"),
            rows,
        )

    # --- URLs ---------------------------------------------------------------------------------
    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name

        def view(method: Any) -> Any:
            # Backups and restores must run outside a transaction, even with ATOMIC_REQUESTS.
            def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
                try:
                    return method(request, *args, **kwargs)  # type: ignore[no-any-return]
                except MissingPermission as exc:
                    return self._denied(request, "", exc)

            update_wrapper(wrapper, method)
            for alias in connections:
                wrapper = transaction.non_atomic_requests(using=alias)(wrapper)
            return self.admin_site.admin_view(wrapper)

        return [
            path("backup-now/", view(self.backup_now_view), name="{}_{}_backup_now".format(*info)),
            path(
                "<path:object_id>/restore/",
                view(self.restore_view),
                name="{}_{}_restore".format(*info),
            ),
            path(
                "<path:object_id>/verify/",
                view(self.verify_view),
                name="{}_{}_verify".format(*info),
            ),
            path(
                "<path:object_id>/download/",
                view(self.download_view),
                name="{}_{}_download".format(*info),
            ),
            path("<path:object_id>/pin/", view(self.pin_view), name="{}_{}_pin".format(*info)),
            *super().get_urls(),
        ]

    def _url(self, name: str, *args: Any) -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_{name}", args=args)

    def _get_backup(self, request: HttpRequest, object_id: str) -> Backup:
        backup = self.get_object(request, unquote(object_id))
        if backup is None:
            raise Http404(f"no backup with id {object_id!r}")
        return backup

    @staticmethod
    def _require(request: HttpRequest, perm: str) -> None:
        if not request.user.has_perm(f"safemigrate.{perm}"):
            raise MissingPermission(f"safemigrate.{perm}")

    def _permissions(self, request: HttpRequest) -> dict[str, bool]:
        user = request.user
        return {
            "can_backup": user.has_perm("safemigrate.add_backup"),
            "can_restore": _may_restore(user),
            "can_download": user.has_perm("safemigrate.download_backup"),
            "can_verify": user.has_perm("safemigrate.change_backup"),
            "can_pin": user.has_perm("safemigrate.change_backup"),
        }

    # --- the change list: health banner, chart, Back up now -------------------------------
    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        from safemigrate import catalogue
        from safemigrate.health import backup_health

        problems: list[Problem] = []
        for alias in connections:
            try:
                # The catalogue's rows, not a manifest read per backup (1,000 backups: issue #17).
                listed = catalogue.catalogued_backups(alias=alias)
                problems.extend(backup_health(alias=alias, backups=listed).problems)
            except Exception as exc:  # noqa: BLE001 - the page must render whatever the state
                problems.append(Problem("", f"health of database {alias!r} unknown: {exc}", ""))
        context = {
            **self._permissions(request),
            "health_problems": [
                {"id": p.id, "message": inline_code(p.message), "hint": inline_code(p.hint)} for p in problems
            ],
            "chart": backup_chart(),
            "databases": list(connections),
            **(extra_context or {}),
        }
        token = _failures_seen.set({})
        try:
            response = super().changelist_view(request, extra_context=context)
            if isinstance(response, TemplateResponse):
                response.render()  # the rows' columns are drawn now, while the cache is set
            return response
        finally:
            _failures_seen.reset(token)

    @method_decorator(require_POST)
    def backup_now_view(self, request: HttpRequest) -> HttpResponse:
        """POST: make a verified backup now (permission safemigrate.add_backup)."""
        from safemigrate.backup import create_backup
        from safemigrate.rotation import admin_backup_refusal

        self._require(request, "add_backup")
        changelist = self._url("changelist")
        alias = request.POST.get("database") or "default"
        if alias not in connections:
            self.message_user(request, _("Unknown database %r.") % alias, messages.ERROR)
            return HttpResponseRedirect(changelist)
        refusal = admin_backup_refusal(alias=alias)
        if refusal:
            self.message_user(request, _("Backup not made: %s.") % refusal, messages.ERROR)
            return HttpResponseRedirect(changelist)
        try:
            result = create_backup(alias=alias, reason="admin")
        except SafeMigrateError as exc:
            self.message_user(request, _("Backup failed: %s") % exc, messages.ERROR)
            return HttpResponseRedirect(changelist)
        manifest = result.manifest
        backup = Backup.objects.filter(name=manifest.name).first()
        if backup is not None:
            self.log_addition(request, backup, [{"added": {}}])
        self.message_user(
            request,
            _("Backed up database %(alias)r to %(name)s (%(size)s, %(rows)s rows, verified) in %(duration)s.")
            % {
                "alias": alias,
                "name": manifest.name,
                "size": human_size(manifest.size),
                "rows": f"{manifest.total_rows:,}",
                "duration": human_duration(result.duration),
            },
            messages.SUCCESS,
        )
        return HttpResponseRedirect(changelist)

    # --- the change form: Restore / Verify / Download / Pin --------------------------------
    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = {
            **self._permissions(request),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

    def restore_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: what the restore will change. POST (CSRF) from that page: restore."""
        from safemigrate.restore import restore_preview
        from safemigrate.selection import restorable

        backup = self._get_backup(request, object_id)
        if not _may_restore(request.user):
            raise MissingPermission("safemigrate.restore_backup", superuser=True)
        change_url = self._url("change", backup.pk)
        try:
            manifest = restorable(_manifest(backup), name=backup.name, database=backup.database)
        except SafeMigrateError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(change_url)
        if request.method == "POST":
            return self._restore(request, backup, manifest)
        context = {
            **self.admin_site.each_context(request),
            "subtitle": None,
            "opts": self.opts,
            "original": backup,
            "manifest": manifest,
            "size": human_size(manifest.size),
        }
        request.current_app = self.admin_site.name
        if manifest.verification_failure and "failed_ok" not in request.GET:
            # Warn before the confirmation page: a backup that failed verification may not restore.
            context["title"] = _("%s failed verification") % backup.name
            context["failure"] = manifest.verification_failure
            return TemplateResponse(request, "admin/safemigrate/backup/restore_failed_warning.html", context)
        preview = restore_preview(backup=manifest, alias=backup.database)
        rebuilt = _rebuilt_tables()
        data_rows = [row for row in preview.row_counts if row[0] not in rebuilt]
        context.update(
            {
                "title": _("Restore %s?") % backup.name,
                "preview": preview,
                "migration_rows": _migration_rows(manifest.migrations, preview.current_migrations),
                "row_counts": data_rows,
                "rebuilt_tables": sorted(t for t, _then, _now in preview.row_counts if t in rebuilt),
                "changed_tables": sum(1 for t, _then, _now in preview.changed_tables if t not in rebuilt),
                "login_warning": _login_warning(request.user, manifest),
            }
        )
        return TemplateResponse(request, "admin/safemigrate/backup/restore_confirmation.html", context)

    def _restore(self, request: HttpRequest, backup: Backup, manifest: Manifest) -> HttpResponse:
        from safemigrate.restore import restore_backup

        user_pk = request.user.pk
        try:
            result = restore_backup(backup=manifest, alias=backup.database, safety_backup=True)
        except SafeMigrateError as exc:
            self.message_user(request, _("Restore failed: %s") % exc, messages.ERROR)
            return HttpResponseRedirect(self._url("change", backup.pk))
        text = _("Restored %(name)s (%(rows)s rows) in %(duration)s.") % {
            "name": manifest.name,
            "rows": f"{sum(result.row_counts.values()):,}",
            "duration": human_duration(result.duration),
        }
        if result.safety_backup is not None:
            text += " " + _("The state before the restore is in the safety backup %s.") % (
                result.safety_backup.manifest.name
            )
        if result.unapplied:  # a backup older than the code: pages using newer tables fail
            text += " " + _("It lacks %(n)d migration(s) of this code: run manage.py migrate now.") % {
                "n": len(result.unapplied)
            }
        if _session_survived(request, user_pk):
            restored = Backup.objects.filter(name=manifest.name).first()
            if restored is not None:
                with contextlib.suppress(DatabaseError):
                    self.log_change(request, restored, f"Restored the database from {manifest.name}")
            self.message_user(request, text, messages.WARNING if result.unapplied else messages.SUCCESS)
        else:
            # The sessions and users were restored too: this login is not in the restored database.
            logout(request)
            self.message_user(
                request,
                text + " " + _("Your session was not in the restored database: please log in again."),
                messages.WARNING,
            )
        return HttpResponseRedirect(self._url("changelist"))

    @method_decorator(require_POST)
    def verify_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST: checksum + scratch restore + integrity check (needs safemigrate.change_backup)."""
        from safemigrate.restore import verify_backup

        backup = self._get_backup(request, object_id)
        self._require(request, "change_backup")
        change_url = self._url("change", backup.pk)
        try:
            verify_backup(backup=_manifest(backup), alias=backup.database)
        except SafeMigrateError as exc:
            self.message_user(
                request,
                _("Verification of %(name)s failed: %(error)s") % {"name": backup.name, "error": exc},
                messages.ERROR,
            )
            return HttpResponseRedirect(change_url)
        self.log_change(request, backup, "Verified")
        self.message_user(
            request,
            _("Verified %s: checksum, a restore into a scratch copy and the integrity check passed.")
            % backup.name,
            messages.SUCCESS,
        )
        return HttpResponseRedirect(change_url)

    def download_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        """GET: stream the file as stored (permission safemigrate.download_backup; never cached)."""
        backup = self._get_backup(request, object_id)
        self._require(request, "download_backup")
        try:
            handle = _open_backup_file(backup)
        except OSError as exc:
            self.message_user(
                request,
                _("Cannot download %(name)s: the file %(path)s is missing (%(error)s).")
                % {"name": backup.name, "path": backup.path, "error": exc.strerror},
                messages.ERROR,
            )
            return HttpResponseRedirect(self._url("change", backup.pk))
        response = FileResponse(
            handle,
            as_attachment=True,
            filename=Path(backup.path).name,
            content_type="application/octet-stream",
        )
        patch_cache_control(response, no_store=True, private=True, no_cache=True, max_age=0)
        response["X-Content-Type-Options"] = "nosniff"
        return response

    @method_decorator(require_POST)
    def pin_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST pinned=1|0: a pinned backup is never deleted by rotation."""
        from safemigrate.rotation import set_pinned

        backup = self._get_backup(request, object_id)
        self._require(request, "change_backup")
        change_url = self._url("change", backup.pk)
        pinned = request.POST.get("pinned", "1" if not backup.pinned else "0") == "1"
        try:
            set_pinned(_manifest(backup), pinned=pinned)
        except (SafeMigrateError, OSError) as exc:
            self.message_user(
                request,
                _("Cannot change %(name)s: %(error)s") % {"name": backup.name, "error": exc},
                messages.ERROR,
            )
            return HttpResponseRedirect(change_url)
        self.log_change(request, backup, "Pinned" if pinned else "Unpinned")
        self.message_user(
            request,
            (
                _("Pinned %s: rotation will never delete it.")
                if pinned
                else _("Unpinned %s: rotation may delete it.")
            )
            % backup.name,
            messages.SUCCESS,
        )
        return HttpResponseRedirect(change_url)

    # --- delete: the file, its manifest and the record ------------------------------------
    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except OSError as exc:
            self.message_user(request, _("Delete failed: %s") % exc, messages.ERROR)
            return HttpResponseRedirect(self._url("change", unquote(object_id)))

    def delete_model(self, request: HttpRequest, obj: Backup) -> None:
        from safemigrate.rotation import delete_backup_files

        delete_backup_files(_manifest_or_row(obj))
        obj.delete()  # normally gone already (the library forgets it); a no-op then

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Backup]) -> None:
        from safemigrate.rotation import delete_backup_files

        for obj in queryset:
            try:
                delete_backup_files(_manifest_or_row(obj))
            except OSError as exc:
                self.message_user(
                    request,
                    _("Could not delete %(name)s: %(error)s") % {"name": obj.name, "error": exc},
                    messages.ERROR,
                )
            else:
                obj.delete()


def _rebuilt_tables() -> set[str]:
    """Tables a restore does not bring back as they were: rebuilt from the backup folder after it
    (the catalogue from the manifests, the run log from its journal)."""
    return {Backup._meta.db_table, MigrationRun._meta.db_table}


def _login_warning(user: Any, manifest: Manifest) -> str:
    """Why this user may not be able to log in after restoring ``manifest``; empty when it looks fine.

    The backup's own rows are not read for a preview: an account created after the backup, or a
    backup with no users at all, is known from the dates and row counts alone.
    """
    from safemigrate import catalogue

    table = get_user_model()._meta.db_table
    username = user.get_username()
    if manifest.row_counts.get(table, None) == 0:
        return str(
            _(
                "The backup has no user accounts: after the restore you (%(user)s) will be logged out "
                "and nobody can log in until you run manage.py createsuperuser."
            )
            % {"user": username}
        )
    joined = getattr(user, "date_joined", None)
    if joined is not None and joined > catalogue.db_datetime(manifest.created):
        return str(
            _(
                "Your account %(user)s was created after this backup (%(joined)s): it is not in the "
                "backup, so after the restore you will be logged out and cannot log in as %(user)s. "
                "Make sure you know another superuser's password in the backup, or run manage.py "
                "createsuperuser afterwards."
            )
            % {"user": username, "joined": f"{joined:%Y-%m-%d %H:%M %Z}"}
        )
    return ""


def _may_restore(user: Any) -> bool:
    """Restore is superuser-only (plus the permission): a restore brings back every account as it
    was then, so whoever restores can make themselves last night's superuser."""
    return bool(user.is_active and user.is_superuser and user.has_perm("safemigrate.restore_backup"))


def _open_backup_file(backup: Backup) -> Any:
    """The backup's file, opened for reading: only a regular file with a backup name directly in
    the database's backup folder, never through a symlink (a planted link would serve any file)."""
    from safemigrate.files import open_regular
    from safemigrate.manifest import is_backup_name

    path = Path(backup.path)
    folder = backup_dir_for(backup.database).resolve() if backup.database in connections else None
    if folder is None or not is_backup_name(path.name) or path.parent.resolve() != folder:
        raise OSError(errno.EPERM, "not a file in the backup folder")
    try:
        return open_regular(folder / path.name)
    except ValueError:
        raise OSError(errno.EPERM, "not a regular file") from None


def _session_survived(request: HttpRequest, user_pk: Any) -> bool:
    """True when this request's user is still in the (restored) database, the same superuser with
    the same password; backups hold no sessions, so this login (and no other) is saved again."""
    try:
        user = get_user_model()._default_manager.filter(pk=user_pk, is_active=True, is_superuser=True).first()
        auth_hash = request.session.get(HASH_SESSION_KEY)
        if (
            user is None
            or not auth_hash
            or not constant_time_compare(auth_hash, user.get_session_auth_hash())
        ):
            return False
        key = request.session.session_key
        if not key or not request.session.exists(key):
            request.session.save(must_create=bool(key))
        return True
    except (DatabaseError, CreateError):
        return False


def _migration_rows(then: dict[str, list[str]], now: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Per app: the latest migration in the backup and now, and what the restore un-applies."""
    rows = []
    for app in sorted(set(then) | set(now)):
        before, current = then.get(app, []), now.get(app, [])
        rows.append(
            {
                "app": app,
                "then": before[-1] if before else None,
                "now": current[-1] if current else None,
                "unapplied": [n for n in current if n not in before],
                "reapplied": [n for n in before if n not in current],
            }
        )
    return rows
