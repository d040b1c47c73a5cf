"""PostgreSQL database administration, on an autocommit connection to a maintenance database.

Creating a scratch database like the live one, carrying database-level settings over (pg_dump
does not), terminating other sessions, the renaming swap with new connections refused, and
dropping. Each function takes that connection (``admin``); none touches Django's.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import psycopg
from psycopg import sql

from safemigrate.exceptions import RestoreError

logger = logging.getLogger("safemigrate")

SWAP_ATTEMPTS = 10
"""Tries of the renaming swap while new connections keep arriving."""

Admin = psycopg.Connection[Any]


def server_major(conn: Admin) -> int:
    return conn.info.server_version // 10000


def database_names(admin: Admin) -> list[str]:
    return [str(r[0]) for r in admin.execute("SELECT datname FROM pg_database")]


def in_use(admin: Admin, name: str) -> bool:
    return admin.execute("SELECT 1 FROM pg_stat_activity WHERE datname = %s", (name,)).fetchone() is not None


def create_like(admin: Admin, name: str, *, like: str, owner: str | None = None) -> None:
    """A new empty database with ``like``'s encoding, locale, tablespace and owner (``owner``:
    owned by that role instead, the confined scratch user). Raises psycopg.Error."""
    major = server_major(admin)
    locale = ", d.daticulocale" if major in (15, 16) else ", d.datlocale" if major >= 17 else ""
    provider = ", d.datlocprovider" if major >= 15 else ""
    row = admin.execute(
        "SELECT pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, t.spcname, "  # noqa: S608
        f"r.rolname, r.rolname = current_user {provider}{locale} FROM pg_database d "
        "JOIN pg_tablespace t ON t.oid = d.dattablespace JOIN pg_roles r ON r.oid = d.datdba "
        "WHERE d.datname = %s",
        (like,),
    ).fetchone()
    query = sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
    if row is not None:  # else the live database is gone: server defaults
        query += sql.SQL(" ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
            sql.Literal(row[0]), sql.Literal(row[1]), sql.Literal(row[2])
        )
        if row[3] != "pg_default":  # named only when needed: its owner may lack CREATE on it
            query += sql.SQL(" TABLESPACE {}").format(sql.Identifier(row[3]))
        if not row[5] and not owner:
            query += sql.SQL(" OWNER {}").format(sql.Identifier(row[4]))
        if major >= 15 and row[6] == "i":
            query += sql.SQL(" LOCALE_PROVIDER icu ICU_LOCALE {}").format(sql.Literal(row[7]))
    if owner:
        query += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
    admin.execute(query)


def drop_database(admin: Admin, name: str, *, force: bool) -> None:
    """DROP DATABASE IF EXISTS; ``force``: terminating the sessions that use it first."""
    admin.execute("SET statement_timeout = 0")  # DROP DATABASE waits for a checkpoint
    if force and server_major(admin) >= 13:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        return
    if force:
        terminate(admin, name, why=f"to drop {name}")
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def terminate(admin: Admin, name: str, *, why: str) -> int:
    """Terminate every other connection to database ``name``, saying so in the log."""
    wait = ", 5000" if server_major(admin) >= 14 else ""
    rows = admin.execute(
        "SELECT pid, usename, application_name, client_addr, "  # noqa: S608
        f"pg_terminate_backend(pid{wait}) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()",
        (name,),
    ).fetchall()
    if rows:
        who = ", ".join(
            f"pid {pid} ({app or 'no application name'}, user {user}, from {addr or 'a local socket'})"
            for pid, user, app, addr, _ in rows
        )
        logger.warning("terminating %d connection(s) to %s %s: %s", len(rows), name, why, who)
    return len(rows)


def carry_over_properties(admin: Admin, *, live: str, target: str) -> None:
    """``live``'s database-level settings, grants and connection limit onto ``target``."""
    target_id = sql.Identifier(target)
    row = admin.execute(
        "SELECT datacl IS NOT NULL, datconnlimit FROM pg_database WHERE datname = %s", (live,)
    ).fetchone()
    if row is None:
        return
    has_acl, connlimit = row
    statements: list[sql.Composed | sql.SQL] = []
    if connlimit != -1:
        statements.append(
            sql.SQL("ALTER DATABASE {} CONNECTION LIMIT {}").format(target_id, sql.Literal(connlimit))
        )
    if has_acl:
        statements.append(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(target_id))
        for grantee, privilege, grantable in admin.execute(
            "SELECT r.rolname, a.privilege_type, a.is_grantable FROM pg_database d, "
            "aclexplode(d.datacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee "
            "WHERE d.datname = %s AND a.grantee <> d.datdba",
            (live,),
        ).fetchall():
            statements.append(
                sql.SQL("GRANT {} ON DATABASE {} TO {}{}").format(
                    sql.SQL(privilege),
                    target_id,
                    sql.Identifier(grantee) if grantee else sql.SQL("PUBLIC"),
                    sql.SQL(" WITH GRANT OPTION" if grantable else ""),
                )
            )
    for statement in statements:
        try:
            admin.execute(statement)
        except psycopg.Error as exc:
            logger.warning(
                "could not carry %s over to the restored database: %s",
                statement.as_string(admin),
                exc,
            )
    settings = admin.execute(
        "SELECT r.rolname, s.setconfig FROM pg_db_role_setting s "
        "JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole "
        "WHERE d.datname = %s",
        (live,),
    ).fetchall()
    for role, configs in settings:
        for item in configs or []:
            name, _, value = item.partition("=")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name):
                continue
            alter = (
                sql.SQL("ALTER ROLE {} IN DATABASE {}").format(sql.Identifier(role), target_id)
                if role
                else sql.SQL("ALTER DATABASE {}").format(target_id)
            )
            try:
                with admin.transaction():
                    # The value exactly as stored, parsed by the server as it was then.
                    admin.execute("SELECT set_config(%s, %s, true)", (name, value))
                    admin.execute(alter + sql.SQL(" SET {} FROM CURRENT").format(sql.SQL(name)))
            except psycopg.Error as exc:
                logger.warning("could not carry the database setting %s over: %s", name, exc)


def allow_connections(admin: Admin, name: str, *, allow: bool) -> bool:
    """ALTER DATABASE ... ALLOW_CONNECTIONS; False (logged) where this role may not."""
    try:
        admin.execute(
            sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {}").format(
                sql.Identifier(name), sql.SQL("true" if allow else "false")
            )
        )
    except psycopg.Error as exc:
        logger.warning("cannot set ALLOW_CONNECTIONS on %s (%s)", name, exc)
        return False
    return True


def rename_in(admin: Admin, *, scratch: str, live: str, old: str) -> bool:
    """live -> old and scratch -> live in one transaction; True if there was a live database.

    New connections to the live database are refused for the swap (ALLOW_CONNECTIONS false),
    so an application that reconnects at once (any pool) cannot keep it in use.
    """
    exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (live,)).fetchone()
    if exists:
        carry_over_properties(admin, live=live, target=scratch)
    fenced = bool(exists) and allow_connections(admin, live, allow=False)
    try:
        for attempt in range(SWAP_ATTEMPTS):
            if exists:
                terminate(admin, live, why="so the restored copy can replace it")
            terminate(admin, scratch, why="so it can be renamed")
            try:
                # One transaction: the live name always names a complete database.
                with admin.transaction():
                    if exists:
                        admin.execute(
                            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                                sql.Identifier(live), sql.Identifier(old)
                            )
                        )
                    admin.execute(
                        sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                            sql.Identifier(scratch), sql.Identifier(live)
                        )
                    )
                fenced = False  # the refusing database is now ``old``; the new live one allows
                return bool(exists)
            except psycopg.errors.ObjectInUse as exc:
                if attempt == SWAP_ATTEMPTS - 1:
                    raise RestoreError(
                        f"cannot replace {live}: new connections keep arriving ({exc}); stop "
                        "the application and restore again. The live database was not changed"
                    ) from exc
                time.sleep(0.2 * (attempt + 1))
    finally:
        if fenced:
            allow_connections(admin, live, allow=True)
    return bool(exists)
