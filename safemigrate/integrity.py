"""Integrity checks of the live database: structure, foreign keys, every table readable."""

from __future__ import annotations

from dataclasses import dataclass

from safemigrate.conf import get_settings
from safemigrate.exceptions import IntegrityCheckFailed
from safemigrate.vendors import get_adapter


@dataclass(frozen=True)
class IntegrityReport:
    database: str
    errors: list[str]
    row_counts: dict[str, int]

    @property
    def ok(self) -> bool:
        return not self.errors


def check_database(*, alias: str, level: str | None = None) -> IntegrityReport:
    """Check database ``alias``; never raises for a damaged database, it reports it."""
    adapter = get_adapter(alias)
    errors = adapter.integrity_errors(level=level or get_settings().integrity_check)
    counts: dict[str, int] = {}
    if not errors:
        try:
            counts = adapter.row_counts()
        except Exception as exc:  # noqa: BLE001 - an unreadable table is a finding
            errors = [f"cannot count rows: {exc}"]
    return IntegrityReport(database=adapter.database_name(), errors=errors, row_counts=counts)


def ensure_healthy(*, alias: str, level: str | None = None, when: str = "check") -> IntegrityReport:
    """Like ``check_database`` but raises IntegrityCheckFailed with what to do."""
    report = check_database(alias=alias, level=level)
    if not report.ok:
        raise unhealthy(database=report.database, errors=report.errors, when=when)
    return report


def unhealthy(*, database: str, errors: list[str], when: str) -> IntegrityCheckFailed:
    """The one-line refusal for a database that failed its check ``when``, with what to do."""
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return IntegrityCheckFailed(
        f"{when}: database {database} failed its integrity check: {errors[0]}{more}; "
        "nothing was changed. Restore a backup (restore --list, restore --latest)",
        errors,
    )
