"""The backup catalogue and the log of migration runs.

The catalogue mirrors the manifests in the backup folder and can be rebuilt from them
(``backups --rescan``); the files are the source of truth.
"""

from __future__ import annotations

from pathlib import Path

from django.db import models
from django.utils.translation import gettext_lazy as _

from safemigrate.constants import MANIFEST_SUFFIX


class Backup(models.Model):
    name = models.CharField(_("name"), max_length=255, unique=True)
    path = models.CharField(_("path"), max_length=1024)
    created = models.DateTimeField(_("created"), db_index=True)
    reason = models.CharField(_("reason"), max_length=64)
    database = models.CharField(_("database alias"), max_length=64, default="default")
    vendor = models.CharField(_("vendor"), max_length=32)
    size = models.BigIntegerField(_("size (bytes)"))
    sha256 = models.CharField(_("sha256"), max_length=64)
    compression = models.CharField(_("compression"), max_length=16)
    encrypted = models.BooleanField(_("encrypted"), default=False)
    verified = models.BooleanField(_("verified"), default=False)
    verified_at = models.DateTimeField(_("verified at"), null=True, blank=True)
    verification_failed_at = models.DateTimeField(
        _("verification failed at"),
        null=True,
        blank=True,
        db_index=True,
        help_text=_("When the last verification failed; empty once a verification passes."),
    )
    verification_error = models.TextField(_("verification error"), blank=True)
    pinned = models.BooleanField(_("pinned"), default=False)
    pinned_until = models.DateTimeField(
        _("pinned until"),
        null=True,
        blank=True,
        help_text=_("The automatic pin of a pre-migration backup ends then."),
    )
    offsite_copied = models.BooleanField(_("copied off-site"), default=False)
    migrations = models.JSONField(_("applied migrations"), default=dict, blank=True)
    row_counts = models.JSONField(_("row counts"), default=dict, blank=True)
    json_dump = models.JSONField(_("JSON dump"), null=True, blank=True)
    duration = models.FloatField(_("duration (s)"), default=0)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = _("backup")
        verbose_name_plural = _("backups")
        permissions = [
            ("restore_backup", _("Can restore the database from a backup")),
            ("download_backup", _("Can download backup files")),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def on_disk(self) -> bool:
        return Path(self.path).is_file()

    @property
    def verification_failed(self) -> bool:
        return self.verification_failed_at is not None

    @property
    def manifest_path(self) -> Path:
        return Path(self.path + MANIFEST_SUFFIX)


class MigrationRun(models.Model):
    class Status(models.TextChoices):
        APPLIED = "applied", _("applied")
        REFUSED = "refused", _("refused")
        ROLLED_BACK = "rolled_back", _("rolled back")
        FAILED = "failed", _("failed (rollback failed)")

    started = models.DateTimeField(_("started"), db_index=True)
    finished = models.DateTimeField(_("finished"), null=True, blank=True)
    duration = models.FloatField(_("duration (s)"), default=0)
    database = models.CharField(_("database alias"), max_length=64, default="default")

    class Rollback(models.TextChoices):
        TRANSACTION = "transaction", _("database transaction")
        RESTORE = "restore", _("restore from backup")

    status = models.CharField(_("status"), max_length=16, choices=Status.choices)
    rollback = models.CharField(
        _("rollback"),
        max_length=16,
        choices=Rollback.choices,
        blank=True,
        help_text=_("How a failure of this run is (or was) undone."),
    )
    plan = models.JSONField(_("plan"), default=list, blank=True)
    backup = models.ForeignKey(
        Backup,
        verbose_name=_("backup used"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="migration_runs",
    )
    backup_name = models.CharField(_("backup name"), max_length=255, blank=True)
    error = models.TextField(_("error"), blank=True)
    host = models.CharField(_("host"), max_length=255, blank=True)
    pid = models.IntegerField(_("pid"), null=True, blank=True)

    class Meta:
        ordering = ["-started", "-id"]
        verbose_name = _("migration run")
        verbose_name_plural = _("migration runs")

    def __str__(self) -> str:
        return f"{self.started:%Y-%m-%d %H:%M:%S} {self.get_status_display()}"
