"""The server adapters in-process: credentials, client tools, the swap's edge cases, amcheck."""

from __future__ import annotations

import logging
import subprocess
from io import BytesIO
from typing import Any

import pytest

from safemigrate.exceptions import BackupError, RestoreError
from tests.safemigrate.vendors.servers import adapter_for, require, unique_name, vendor_module

SECRET = "pw-Very-Secret-42"


@pytest.fixture
def spawned(monkeypatch):
    """Every (argv, env) a client tool was started with."""
    calls: list[tuple[list[str], dict[str, str]]] = []
    real = subprocess.Popen

    class Spy(real):  # type: ignore[misc,valid-type]
        def __init__(self, args, *rest, **kwargs):
            calls.append(([str(a) for a in args], dict(kwargs.get("env") or {})))
            super().__init__(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", Spy)
    return calls


@pytest.fixture
def scratch_db(request):
    """An empty database on the server named by the test's ``engine`` parameter."""
    server = require(request.param)
    name = unique_name(server.engine)
    server.create(name)
    yield server, name
    for leftover in server.databases(name):
        server.drop(leftover)


@pytest.fixture
def mysql_user():
    """A MariaDB user with a real password, so the password must reach the tools to work."""
    server = require("mysql")
    user = unique_name("mysql")[:32]
    server.query(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{SECRET}'")
    server.query(f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'127.0.0.1'")
    yield user
    server.query(f"DROP USER '{user}'@'127.0.0.1'")


@pytest.mark.parametrize("scratch_db", ["postgresql", "mysql"], indirect=True)
def test_client_tools__password_only_in_the_environment(scratch_db, spawned, caplog, tmp_path, request):
    """No argv of pg_dump/pg_restore/mariadb-dump/mariadb holds the password, nor does any log."""
    server, name = scratch_db
    user = request.getfixturevalue("mysql_user") if server.engine == "mysql" else ""
    server.query("CREATE TABLE t (id int PRIMARY KEY)", database=name)
    server.query("INSERT INTO t VALUES (1), (2)", database=name)
    adapter = adapter_for(server, name, user=user, password=SECRET)
    caplog.set_level(logging.DEBUG, logger="safemigrate")
    dump = BytesIO()
    info = adapter.snapshot(dump, workdir=tmp_path)
    assert info.row_counts == {"t": 2}
    scratch = adapter.restore_to_scratch(BytesIO(dump.getvalue()), workdir=tmp_path)
    adapter.drop_scratch(scratch)
    tools = {argv[0].rsplit("/", 1)[-1] for argv, _ in spawned if "--version" not in argv}
    expected = {"pg_dump", "pg_restore"} if server.engine == "postgresql" else {"mariadb-dump", "mariadb"}
    assert tools == expected
    variable = "PGPASSWORD" if server.engine == "postgresql" else "MYSQL_PWD"
    for argv, env in spawned:
        assert not any(SECRET in arg for arg in argv), argv
        assert env.get(variable) == SECRET
    assert SECRET not in caplog.text
    assert SECRET not in adapter.database_name()


def test_postgresql_tools__missing_or_older_than_the_server_say_what_to_install(monkeypatch, tmp_path):
    adapter = adapter_for(require("postgresql"), "anything")
    with pytest.raises(
        BackupError,
        match=r"^pg_dump \d+\.\d+ is older than the PostgreSQL 99 server "
        r"and cannot read it: apt-get install postgresql-client-99 ",
    ):
        adapter.dump_command(server_major=99)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RestoreError, match=r"^pg_restore not found: apt-get install postgresql-client-99 "):
        adapter.restore_command("scratch", server_major=99)


def test_mysql_tools__missing_say_what_to_install(monkeypatch, tmp_path):
    adapter = adapter_for(require("mysql"), "anything")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BackupError, match=r"^mariadb-dump not found: apt-get install mariadb-client "):
        adapter.dump_command()
    with pytest.raises(RestoreError, match=r"^mariadb not found: apt-get install mariadb-client "):
        adapter.restore_command("scratch")


@pytest.mark.parametrize("scratch_db", ["postgresql", "mysql"], indirect=True)
def test_swap_in__recreates_a_live_database_that_is_gone(scratch_db, tmp_path):
    server, name = scratch_db
    server.query("CREATE TABLE t (id int PRIMARY KEY, s varchar(20))", database=name)
    server.query("INSERT INTO t VALUES (1, 'one'), (2, 'two')", database=name)
    adapter = adapter_for(server, name)
    dump = BytesIO()
    adapter.snapshot(dump, workdir=tmp_path)
    server.drop(name)
    adapter.swap_in(adapter.restore_to_scratch(BytesIO(dump.getvalue()), workdir=tmp_path))
    assert server.query("SELECT * FROM t ORDER BY id", database=name) == [(1, "one"), (2, "two")]
    assert server.databases(name) == [name]


@pytest.mark.parametrize("scratch_db", ["postgresql"], indirect=True)
def test_postgresql_swap_in__keeps_database_settings_grants_and_limit(scratch_db, tmp_path):
    """pg_dump does not carry ALTER DATABASE … SET, GRANT … ON DATABASE, CONNECTION LIMIT."""
    server, name = scratch_db
    role = unique_name("role")
    server.query(f'CREATE ROLE "{role}" NOLOGIN')
    try:
        for sql in (
            f"ALTER DATABASE \"{name}\" SET statement_timeout = '42s'",
            f'ALTER DATABASE "{name}" SET search_path = public, "$user", extra',
            f'ALTER ROLE "{role}" IN DATABASE "{name}" SET work_mem = \'8MB\'',
            f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC',
            f'GRANT CONNECT ON DATABASE "{name}" TO "{role}"',
            f'ALTER DATABASE "{name}" CONNECTION LIMIT 40',
        ):
            server.query(sql)
        settings_sql = (
            "SELECT coalesce(r.rolname, '-'), s.setconfig FROM pg_db_role_setting s "
            "JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole "
            "WHERE d.datname = %s ORDER BY 1"
        )
        props_sql = "SELECT datacl::text, datconnlimit FROM pg_database WHERE datname = %s"
        before = server.query(settings_sql, (name,)), server.query(props_sql, (name,))
        adapter = adapter_for(server, name)
        dump = BytesIO()
        adapter.snapshot(dump, workdir=tmp_path)
        adapter.swap_in(adapter.restore_to_scratch(BytesIO(dump.getvalue()), workdir=tmp_path))
        assert (server.query(settings_sql, (name,)), server.query(props_sql, (name,))) == before
        assert before[1][0][1] == 40
    finally:
        server.drop(name)
        server.query(f'DROP ROLE "{role}"')


@pytest.mark.parametrize("scratch_db", ["postgresql"], indirect=True)
def test_postgresql_integrity__amcheck_finds_a_damaged_index_and_leaves_nothing_behind(scratch_db):
    """The index no longer matches its (redefined) expression: amcheck's heapallindexed sees it."""
    server, name = scratch_db
    for sql in (
        "CREATE FUNCTION f(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1'",
        "CREATE TABLE t (id int PRIMARY KEY)",
        "INSERT INTO t SELECT generate_series(1, 50)",
        "CREATE INDEX t_f ON t (f(id))",
        "CREATE OR REPLACE FUNCTION f(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 + 7'",
    ):
        server.query(sql, database=name)
    adapter = adapter_for(server, name)
    assert adapter.integrity_errors(level="quick") == []
    errors = adapter.integrity_errors(level="full")
    assert len(errors) == 1
    assert errors[0].startswith('index t_f is damaged: heap tuple (0,1) from table "t" lacks matching')
    assert server.query("SELECT extname FROM pg_extension WHERE extname = 'amcheck'", database=name) == []


@pytest.mark.parametrize("scratch_db", ["mysql"], indirect=True)
def test_mysql_swap_in__recreates_views_triggers_and_routines(scratch_db, tmp_path):
    server, name = scratch_db
    for sql in (
        "CREATE TABLE t (id int AUTO_INCREMENT PRIMARY KEY, s varchar(40))",
        "CREATE TABLE other (n int)",
        "CREATE TRIGGER up BEFORE INSERT ON t FOR EACH ROW SET NEW.s = UPPER(NEW.s)",
        "CREATE VIEW v AS SELECT id, s FROM t",
        "CREATE VIEW vv AS SELECT count(*) AS n FROM v",
        "CREATE FUNCTION answer() RETURNS int DETERMINISTIC RETURN 42",
        "INSERT INTO t (s) VALUES ('a'), ('it''s (a),(trap)'), ('new\nline')",
    ):
        server.query(sql, database=name)
    adapter = adapter_for(server, name)
    dump = BytesIO()
    info = adapter.snapshot(dump, workdir=tmp_path)
    assert info.row_counts == {"t": 3, "other": 0}
    for sql in ("DROP VIEW vv", "DROP TRIGGER up", "DROP FUNCTION answer", "DELETE FROM t"):
        server.query(sql, database=name)
    adapter.swap_in(adapter.restore_to_scratch(BytesIO(dump.getvalue()), workdir=tmp_path))
    server.query("INSERT INTO t (s) VALUES ('b')", database=name)
    assert server.query("SELECT s FROM v ORDER BY id", database=name) == [
        ("A",),
        ("IT'S (A),(TRAP)",),
        ("NEW\nLINE",),
        ("B",),
    ]
    assert server.query("SELECT n FROM vv", database=name) == [(4,)]
    assert server.query("SELECT answer()", database=name) == [(42,)]
    assert adapter.integrity_errors() == []
    assert server.databases(name) == [name]


def feed(counter: Any, data: bytes, size: int) -> Any:
    for start in range(0, len(data), size):
        counter.write(data[start : start + size])
    return counter


@pytest.mark.parametrize("size", [1, 7, 1 << 20])
def test_dump_row_counter__both_layouts_in_any_chunking(size):
    DumpRowCounter = vendor_module("mysql").DumpRowCounter  # noqa: N806 - a class
    dump = (
        b"-- Dumping data for table `new``style`\n--\n\nLOCK TABLES `new``style` WRITE;\n"
        b"INSERT INTO `new``style` VALUES\n(1,'a),(b;'),\n(2,'x\\ny\\';\\n'),\n(3,NULL);\n"
        b"UNLOCK TABLES;\n"
        b"-- Dumping data for table `old`\nINSERT INTO `old` VALUES (1,'),('),(2,'\\\\'),(3,'');\n"
        b"INSERT INTO `old` VALUES (4,'a');\nUNLOCK TABLES;\n"
        b"-- Dumping data for table `empty`\nLOCK TABLES `empty` WRITE;\nUNLOCK TABLES;\n"
        b"DELIMITER ;;\nINSERT INTO `old` VALUES (99);\nDELIMITER ;\n"
        b"-- Dump completed on 2024-01-01\n"
    )
    counter = feed(DumpRowCounter(), dump, size)
    assert counter.counts == {"new`style": 3, "old": 4, "empty": 0}
    assert counter.complete
    assert not feed(DumpRowCounter(), dump[:-20], size).complete
