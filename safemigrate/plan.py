"""The migration plan, computed with Django's own executor, and the risk of each operation."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.db import connections
from django.db.migrations import operations as ops
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.operations.base import Operation

DESTRUCTIVE = "destructive"
DATA_CHANGING = "data-changing"
IRREVERSIBLE = "irreversible"

_DESTRUCTIVE_FORWARD = (ops.DeleteModel, ops.RemoveField)
_DESTRUCTIVE_BACKWARD = (ops.CreateModel, ops.AddField)
_DATA_CHANGING = (
    ops.AlterField,
    ops.RunPython,
    ops.RunSQL,
    ops.RenameField,
    ops.RenameModel,
    ops.AlterModelTable,
    ops.AlterUniqueTogether,
    ops.AddConstraint,
)
# Statements no engine runs inside a transaction (or that end one): such a plan cannot be one.
_NO_TRANSACTION = re.compile(
    r"\b(VACUUM|CONCURRENTLY|ALTER\s+SYSTEM|(CREATE|DROP)\s+DATABASE)\b|\bPRAGMA\s+journal_mode"
    r"|^\s*(BEGIN|COMMIT|END)\b",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass(frozen=True)
class OperationRisk:
    description: str
    risks: tuple[str, ...]


@dataclass(frozen=True)
class PlanStep:
    app_label: str
    name: str
    backwards: bool
    atomic: bool
    operations: tuple[OperationRisk, ...] = field(default_factory=tuple)
    needs_autocommit: bool = False
    """It runs SQL that no transaction may hold (VACUUM, CREATE INDEX CONCURRENTLY, ...)."""

    @property
    def label(self) -> str:
        return f"{self.app_label}.{self.name}"

    @property
    def risks(self) -> set[str]:
        return {r for op in self.operations for r in op.risks}


@dataclass(frozen=True)
class MigrationPlan:
    steps: tuple[PlanStep, ...]
    has_applied_migrations: bool

    @property
    def is_empty(self) -> bool:
        return not self.steps

    @property
    def all_atomic(self) -> bool:
        return all(s.atomic for s in self.steps)

    @property
    def needs_autocommit(self) -> bool:
        return any(s.needs_autocommit for s in self.steps)

    def labels(self) -> list[str]:
        return [("-" if s.backwards else "") + s.label for s in self.steps]


def operation_risks(operation: Operation, *, backwards: bool) -> tuple[str, ...]:
    risks: list[str] = []
    destructive = _DESTRUCTIVE_BACKWARD if backwards else _DESTRUCTIVE_FORWARD
    if isinstance(operation, destructive):
        risks.append(DESTRUCTIVE)
    if isinstance(operation, _DATA_CHANGING):
        risks.append(DATA_CHANGING)
    if isinstance(operation, ops.RunSQL | ops.RunPython) and not operation.reversible:
        risks.append(IRREVERSIBLE)
    if isinstance(operation, ops.RunSQL) and not backwards:
        sql = str(operation.sql).upper()
        if any(word in sql for word in ("DROP ", "DELETE ", "TRUNCATE ")):
            risks.append(DESTRUCTIVE)
    return tuple(dict.fromkeys(risks))


def needs_autocommit(operation: Operation, *, backwards: bool = False) -> bool:
    """RunSQL (or a database-specific index operation) that must run outside a transaction."""
    if type(operation).__name__.endswith("Concurrently"):  # postgres.operations.*Concurrently
        return True
    if isinstance(operation, ops.RunSQL):
        sql = operation.reverse_sql if backwards else operation.sql
        statements = sql if isinstance(sql, list | tuple) else [sql or ""]
        return any(_NO_TRANSACTION.search(str(s)) for s in statements)
    return False


def _targets(
    executor: MigrationExecutor, app_label: str | None, target: str | None
) -> list[tuple[str, str | None]]:
    """Targets exactly as Django's migrate command computes them (errors are left to it)."""
    graph = executor.loader.graph
    if app_label and target:
        if target == "zero":
            return [(app_label, None)]
        migration = executor.loader.get_migration_by_prefix(app_label, target)
        return [(app_label, migration.name)]
    if app_label:
        return [key for key in graph.leaf_nodes() if key[0] == app_label]
    return list(graph.leaf_nodes())


def pending_plan(
    *, alias: str = "default", app_label: str | None = None, target: str | None = None
) -> MigrationPlan:
    """What ``migrate`` would run on ``alias`` now; raises whatever Django's loader raises."""
    connection = connections[alias]
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(_targets(executor, app_label, target))
    steps = tuple(
        PlanStep(
            app_label=migration.app_label,
            name=migration.name,
            backwards=backwards,
            atomic=migration.atomic,
            operations=tuple(
                OperationRisk(op.describe(), operation_risks(op, backwards=backwards))
                for op in migration.operations
            ),
            needs_autocommit=any(needs_autocommit(op, backwards=backwards) for op in migration.operations),
        )
        for migration, backwards in plan
    )
    return MigrationPlan(steps=steps, has_applied_migrations=bool(executor.loader.applied_migrations))
