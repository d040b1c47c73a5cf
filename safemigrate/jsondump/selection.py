"""Which models a dump holds, in which order, and which of their fields it carries."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db import connections, models, router
from django.db.migrations.recorder import MigrationRecorder

from safemigrate.apps import BOOKKEEPING_APPS

EXCLUDED_APPS = BOOKKEEPING_APPS | {"sessions"}
"""Installation state, not data (``apps.BOOKKEEPING_APPS``), and sessions, which are logins:
whoever reads a dump must not be able to replay one."""
NATURAL_PRIMARY = frozenset({"contenttypes.contenttype", "auth.permission"})
"""Models whose rows ``migrate`` creates in every database with its own ids: dumped without primary
keys and merged on import by natural key, like ``dumpdata --natural-primary``."""


def dumped_models(*, alias: str = "default") -> list[type[models.Model]]:
    """Every model a dump holds, parents before the models that refer to them.

    Concrete, managed, non-proxy models that the router lets live in ``alias``, minus
    ``EXCLUDED_APPS``. Ordered like ``serializers.sort_dependencies`` (natural-key dependencies
    first) and, beyond it, by every foreign key and many-to-many relation; cycles and
    self-references are broken in app order, which is harmless because foreign keys are checked
    at the end of the load.
    """
    candidates = [
        model
        for app_config in apps.get_app_configs()
        if app_config.label not in EXCLUDED_APPS
        for model in app_config.get_models()
        if model._meta.managed
        and not model._meta.proxy
        and not model._meta.swapped
        and router.allow_migrate_model(alias, model)
    ]
    included = set(candidates)
    deps: dict[type[models.Model], set[type[models.Model]]] = {m: set() for m in candidates}
    for model in candidates:
        for label in getattr(getattr(model, "natural_key", None), "dependencies", ()):
            try:
                deps[model].add(apps.get_model(label))
            except LookupError:  # a dependency on an app that is not installed here
                continue
        for f in [*model._meta.local_fields, *model._meta.local_many_to_many]:
            if f.remote_field is not None:
                deps[model].add(concrete(f.remote_field.model))
        deps[model] = {d for d in deps[model] if d in included and d is not model}
    ordered: list[type[models.Model]] = []
    done: set[type[models.Model]] = set()
    remaining = list(candidates)
    while remaining:
        ready = next((m for m in remaining if deps[m] <= done), remaining[0])
        ordered.append(ready)
        done.add(ready)
        remaining.remove(ready)
    return ordered


def model_label(model: type[models.Model]) -> str:
    return model._meta.label_lower


def with_foreign_keys(qs: models.QuerySet[Any]) -> models.QuerySet[Any]:
    """``qs`` joined to its non-null foreign keys, which natural keys usually read.

    What ``select_related()`` without arguments did; Django 6.1 deprecates that form.
    """
    names = [f.name for f in qs.model._meta.concrete_fields if f.many_to_one and not f.null]
    return qs.select_related(*names) if names else qs


def concrete(model: type[models.Model]) -> type[models.Model]:
    """The model whose table holds the rows (itself, unless it is a proxy)."""
    return model._meta.concrete_model or model


def serialized_fields(model: type[models.Model]) -> list[models.Field[Any, Any]]:
    """The columns a row carries under "fields", as Django's serializer chooses them."""
    fields: list[Any] = concrete(model)._meta.local_fields
    return [f for f in fields if f.serialize and not getattr(f, "generated", False)]


def auto_m2m(model: type[models.Model]) -> list[models.ManyToManyField[Any, Any]]:
    """Many-to-many fields stored with the row (auto-created through tables only)."""
    fields: list[Any] = concrete(model)._meta.local_many_to_many
    return [f for f in fields if f.serialize and f.remote_field.through._meta.auto_created]


def has_natural_key(model: type[models.Model]) -> bool:
    return hasattr(model, "natural_key")


def applied_migrations(alias: str) -> dict[str, list[str]]:
    recorder = MigrationRecorder(connections[alias])
    if not recorder.has_table():
        return {}
    applied: dict[str, list[str]] = {}
    for app, name in recorder.migration_qs.order_by("app", "id").values_list("app", "name"):
        applied.setdefault(app, []).append(name)
    return applied
