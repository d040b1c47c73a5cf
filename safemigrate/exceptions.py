"""One hierarchy of errors; each message says what failed, where, and what to do."""

from __future__ import annotations


class SafeMigrateError(Exception):
    """Base class for every expected safemigrate failure (commands turn it into CommandError)."""

    returncode = 1


class BackupError(SafeMigrateError):
    """A backup could not be made; the database and existing backups are untouched."""


class RestoreError(SafeMigrateError):
    """A restore could not be done; the database is as it was before the attempt."""


class IntegrityCheckFailed(SafeMigrateError):
    """The database failed an integrity check."""

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class ChecksumMismatch(SafeMigrateError):
    """A backup file's sha256 does not match its manifest: it is damaged and must not be used."""


class LockTimeout(SafeMigrateError):
    """Another safemigrate run holds the database lock."""


class UnsupportedOperation(SafeMigrateError):
    """The database vendor cannot do this operation."""


class BackupNotFound(SafeMigrateError):
    """No backup matches the given id, name or path."""


class Interrupted(SafeMigrateError):
    """Ctrl-C or SIGTERM before anything was changed; exits 130 like an interrupted shell command."""

    returncode = 130


class MigrationFailed(SafeMigrateError):
    """A migration failed; the database was rolled back from the pre-migration backup."""
