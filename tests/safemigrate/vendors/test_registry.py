"""Adapters come from a registry that SAFEMIGRATE_VENDOR_ADAPTERS extends (ENGINE -> class)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core import checks
from django.core.management import CommandError, call_command
from django.db.utils import ConnectionHandler

from safemigrate.conf import backup_dir_for
from safemigrate.exceptions import UnsupportedOperation
from safemigrate.vendors import get_adapter
from safemigrate.vendors.sqlite import Adapter as SQLiteAdapter

WRAPPED = "tests.safemigrate.vendors.wrapped_engine"


class BesideAdapter(SQLiteAdapter):
    """A project's own adapter: SQLite, with backups in a folder of its choosing."""

    def default_backup_dir(self) -> Path | None:
        return Path("/srv/elsewhere")


def wrapped_connection(tmp_path: Path):
    handler = ConnectionHandler({"default": {"ENGINE": WRAPPED, "NAME": str(tmp_path / "db.sqlite3")}})
    return handler["default"]


def e009(settings, tmp_path: Path) -> list[str]:
    settings.SAFEMIGRATE_BACKUP_DIR = str(tmp_path / "backups")
    return [m.msg for m in checks.run_checks() if m.id == "safemigrate.E009"]


def test_custom_mapping__its_adapter_is_used(settings, tmp_path):
    settings.SAFEMIGRATE_VENDOR_ADAPTERS = {
        "django.db.backends.sqlite3": "tests.safemigrate.vendors.test_registry.BesideAdapter"
    }
    assert type(get_adapter("default")) is BesideAdapter
    assert backup_dir_for("default") == Path("/srv/elsewhere")  # conf asks the adapter
    assert e009(settings, tmp_path) == []


def test_default_backup_dir__sqlite_beside_the_file_else_base_dir(settings):
    settings.SAFEMIGRATE_BACKUP_DIR = None
    name = get_adapter("default").connection.settings_dict["NAME"]
    assert backup_dir_for("default") == Path(name).resolve().parent / "backups"


def test_third_party_engine__unknown_until_mapped(settings, tmp_path, django_db_blocker):
    connection = wrapped_connection(tmp_path)
    with pytest.raises(UnsupportedOperation) as refused:
        get_adapter(connection)
    assert str(refused.value) == (
        f"database 'default' uses ENGINE '{WRAPPED}' (vendor 'wrapped'), which has no safemigrate "
        "adapter (built in: SQLite, PostgreSQL, MariaDB/MySQL); map it to an adapter class in "
        "SAFEMIGRATE_VENDOR_ADAPTERS"
    )
    settings.SAFEMIGRATE_VENDOR_ADAPTERS = {WRAPPED: "safemigrate.vendors.sqlite.Adapter"}
    connection = wrapped_connection(tmp_path)
    adapter = get_adapter(connection)
    assert isinstance(adapter, SQLiteAdapter)
    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE t (id integer PRIMARY KEY)")
            cursor.execute("INSERT INTO t VALUES (1), (2)")
        assert adapter.row_counts() == {"t": 2}
        assert adapter.integrity_errors() == []
        connection.close()


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("safemigrate.vendors.sqlite.NoSuchAdapter", "cannot be imported"),
        ("no_such_module.Adapter", "cannot be imported"),
        ("collections.OrderedDict", "is not a concrete VendorAdapter subclass"),
        ("safemigrate.vendors.server.ServerAdapter", "is not a concrete VendorAdapter subclass"),
    ],
)
def test_bad_dotted_path__one_clear_error_and_check_e009(settings, tmp_path, path, problem):
    settings.SAFEMIGRATE_VENDOR_ADAPTERS = {"django.db.backends.sqlite3": path}
    start = f"SAFEMIGRATE_VENDOR_ADAPTERS['django.db.backends.sqlite3'] = {path!r} {problem}"
    with pytest.raises(UnsupportedOperation) as refused:
        get_adapter("default")
    assert str(refused.value).startswith(start)
    assert "\n" not in str(refused.value)
    assert [message.startswith(start) for message in e009(settings, tmp_path)] == [True]
    with pytest.raises(CommandError, match=r"^SAFEMIGRATE_VENDOR_ADAPTERS\['django.db.backends.sqlite3'\]"):
        call_command("backup")


def test_setting_not_a_map__check_e009(settings, tmp_path):
    settings.SAFEMIGRATE_VENDOR_ADAPTERS = ["safemigrate.vendors.sqlite.Adapter"]
    assert [
        m.startswith("SAFEMIGRATE_VENDOR_ADAPTERS must map ENGINE dotted paths")
        for m in e009(settings, tmp_path)
    ] == [True]
