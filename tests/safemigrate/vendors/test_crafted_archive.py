"""A crafted pg_dump archive cannot reach outside the scratch database it is verified in.

The review's attack: an archive whose table has a CHECK constraint calling a function that
alters the application's role; pg_restore of the archive ran it (once per row) as the app role
while Verify reported OK. Here the attacked role is a throwaway one, never ``postgres``.
"""

from __future__ import annotations

import io
import secrets
import subprocess

import pytest

from safemigrate.exceptions import RestoreError
from tests.safemigrate.vendors.servers import HOST, adapter_for, require


@pytest.fixture
def roles():
    """An application role (CREATEDB, not a superuser) and a scratch role it is a member of."""
    server = require("postgresql")
    tag = secrets.token_hex(3)
    app, scratch = f"smsec_app_{tag}", f"smsec_scr_{tag}"
    server.query(f"CREATE ROLE {app} LOGIN CREATEDB")
    server.query(f"CREATE ROLE {scratch} LOGIN")
    server.query(f"GRANT {scratch} TO {app}")
    live = f"smsec_live_{tag}"
    server.query(f"CREATE DATABASE {live} OWNER {app}")
    yield server, app, scratch, live
    for name in server.databases(f"smsec_live_{tag}") + server.databases(f"smsec_src_{tag}"):
        server.drop(name)
    server.query(f"DROP ROLE IF EXISTS {scratch}")
    server.query(f"DROP ROLE IF EXISTS {app}")


def crafted_archive(server, name: str, body: str) -> bytes:
    """pg_dump (custom format, no owners) of a database whose rows run ``body`` when loaded."""
    server.create(name)
    for statement in (
        f"CREATE FUNCTION public.evil(x int) RETURNS boolean LANGUAGE plpgsql AS $f$ BEGIN {body}; "
        "RETURN true; END $f$",
        "CREATE TABLE public.t (id int CHECK (public.evil(id)))",
        "ALTER TABLE public.t DISABLE TRIGGER ALL",
    ):
        server.query(statement, database=name)
    # Rows inserted with the function harmless, so the source database's role stays as it was.
    server.query(
        "CREATE OR REPLACE FUNCTION public.evil(x int) RETURNS boolean LANGUAGE sql AS 'SELECT true'",
        database=name,
    )
    server.query("INSERT INTO public.t SELECT generate_series(1, 3)", database=name)
    server.query(
        f"CREATE OR REPLACE FUNCTION public.evil(x int) RETURNS boolean LANGUAGE plpgsql AS "
        f"$f$ BEGIN {body}; RETURN true; END $f$",
        database=name,
    )
    return subprocess.run(
        ["pg_dump", "-h", HOST, "-U", server.user, "-Fc", "--no-owner", name],
        check=True,
        capture_output=True,
    ).stdout


def role_settings(server, role: str) -> object:
    return server.query("SELECT rolconfig FROM pg_roles WHERE rolname = %s", (role,))[0][0]


def scratch_left(server, live: str) -> list[str]:
    return [n for n in server.databases(live) if n != live]


def test_restore_to_scratch__an_archive_whose_function_alters_the_role_is_refused(roles, tmp_path):
    server, app, _, live = roles
    archive = crafted_archive(
        server, live.replace("live", "src"), f"ALTER ROLE {app} SET work_mem = '1234kB'"
    )
    adapter = adapter_for(server, live, user=app)
    with pytest.raises(RestoreError) as caught:
        adapter.restore_to_scratch(io.BytesIO(archive), workdir=tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert "refused before loading: its entry FUNCTION public.evil(x integer)" in message or (
        "refused before loading: its entry FUNCTION public.evil(integer)" in message
    ), message
    assert "changes a role" in message
    assert role_settings(server, app) is None  # the role was not altered
    assert scratch_left(server, live) == []  # nothing was even created


@pytest.mark.parametrize(
    "body",
    [
        "PERFORM pg_read_file('/etc/hostname')",
        "COPY (SELECT 1) TO PROGRAM 'true'",
        "SET ROLE postgres",
        "EXECUTE 'CREATE DATABASE x'",
    ],
)
def test_restore_to_scratch__statements_reaching_outside_are_refused(roles, tmp_path, body):
    server, app, _, live = roles
    archive = crafted_archive(server, live.replace("live", "src"), body)
    adapter = adapter_for(server, live, user=app)
    with pytest.raises(RestoreError, match=r"refused before loading: its entry FUNCTION public\.evil"):
        adapter.restore_to_scratch(io.BytesIO(archive), workdir=tmp_path)
    assert scratch_left(server, live) == []


def test_verify_load__dynamic_sql_runs_as_the_scratch_user_and_cannot_alter_the_app_role(
    roles, tmp_path, settings
):
    """A text check cannot see ``'ALTER ' || 'ROLE'``: the confined scratch user is what stops it."""
    server, app, scratch_user, live = roles
    body = f"EXECUTE 'ALTER ' || 'ROLE ' || '{app} SET work_mem = ''1234kB'''"
    archive = crafted_archive(server, live.replace("live", "src"), body)
    settings.SAFEMIGRATE_SCRATCH_USER = scratch_user
    adapter = adapter_for(server, live, user=app)
    adapter.confine_scratch = True
    with pytest.raises(RestoreError, match=r"permission denied.*ALTER ROLE"):
        adapter.restore_to_scratch(io.BytesIO(archive), workdir=tmp_path)
    assert role_settings(server, app) is None
    assert scratch_left(server, live) == []


def test_verify_load__an_honest_archive_loads_and_is_read_as_the_scratch_user(roles, tmp_path, settings):
    server, app, scratch_user, live = roles
    archive = crafted_archive(server, live.replace("live", "src"), "NULL")
    settings.SAFEMIGRATE_SCRATCH_USER = scratch_user
    adapter = adapter_for(server, live, user=app)
    adapter.confine_scratch = True
    scratch = adapter.restore_to_scratch(io.BytesIO(archive), workdir=tmp_path)
    try:
        owner = server.query(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (scratch.name,)
        )[0][0]
        assert owner == scratch_user
        assert adapter.row_counts(scratch) == {"t": 3}
        assert adapter.integrity_errors(scratch) == []
    finally:
        adapter.drop_scratch(scratch)
    assert scratch_left(server, live) == []


def test_refusal__extensions_reaching_outside_only_where_the_live_database_has_them():
    from safemigrate.vendors.pgarchive import TocEntry, refusal

    def ext(name: str, defn: str = "") -> list[TocEntry]:
        defn = defn or f"CREATE EXTENSION IF NOT EXISTS {name} WITH SCHEMA public;\n"
        return [TocEntry(desc="EXTENSION", tag=name, namespace="", defn=defn, copy="")]

    assert refusal(ext("pg_trgm"), extensions=set()) is None  # a restore after the database was lost
    assert "reaches outside" in (refusal(ext("dblink"), extensions=set()) or "")
    assert refusal(ext("dblink"), extensions={"dblink"}) is None
    sneaky = "CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public; ALTER ROLE x SUPERUSER;\n"
    assert "holds more than the extension" in (refusal(ext("pg_trgm", sneaky), extensions=set()) or "")
    database = TocEntry(
        desc="DATABASE PROPERTIES", tag="fitness", namespace="", defn="ALTER DATABASE x SET a=1;", copy=""
    )
    assert refusal([database], extensions=set()) is None  # run only with --create, never used
    copy = TocEntry(
        desc="TABLE DATA",
        tag="t",
        namespace="public",
        defn="",
        copy="COPY t FROM stdin; ALTER ROLE x SUPERUSER;\n",
    )
    assert "unexpected statement" in (refusal([copy], extensions=set()) or "")
