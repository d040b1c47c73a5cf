"""A crafted MariaDB dump cannot change the live schema while it is loaded into a scratch copy.

The review's attack: a dump with ``USE live;`` or ``INSERT INTO live.t`` changed live data during
a Verify, which then claimed the live database was unchanged.
"""

from __future__ import annotations

import io
import secrets

import pytest

from safemigrate.exceptions import RestoreError
from tests.safemigrate.vendors.servers import adapter_for, require

HEAD = b"-- MariaDB dump (crafted)\n/*!40101 SET NAMES utf8mb4 */;\nCREATE TABLE `t` (`id` int);\n"
TAIL = b"-- Dump completed on 2026-01-01\n"


@pytest.fixture
def live():
    """A live schema with one row in ``t``, and the server."""
    server = require("mysql")
    name = f"smsec_my_{secrets.token_hex(3)}"
    server.create(name)
    server.query(f"CREATE TABLE `{name}`.`t` (`id` int)")
    server.query(f"INSERT INTO `{name}`.`t` VALUES (1)")
    yield server, name
    for each in server.databases(name):
        server.drop(each)


@pytest.mark.parametrize(
    "attack",
    [
        "USE `{live}`;\nDELETE FROM `t`;\n",
        "use {live}\nDELETE FROM `t`;\n",
        "\\u {live}\nDELETE FROM `t`;\n",
        "INSERT INTO `{live}`.`t` VALUES (666);\n",
        "DELETE FROM {live}.t;\n",
        "/*!40000 DELETE FROM `{live}`.`t` */;\n",
        "INSERT INTO `t` VALUES\n(1),\n(2); DELETE FROM `{live}`.`t`;\n",
        "INSERT INTO `t` VALUES (1),(2); DELETE FROM `{live}`.`t`;\n",
        "DROP DATABASE `{live}`;\n",
        "CREATE DATABASE `smsec_evil`;\n",
        "GRANT ALL ON *.* TO 'x'@'%';\n",
        "CREATE USER 'x'@'%';\n",
        "SET GLOBAL max_connections = 1;\n",
        "SELECT 1 INTO OUTFILE '/tmp/smsec-out';\n",
        "DELIMITER ;;\nCREATE TRIGGER `tr` AFTER INSERT ON `t` FOR EACH ROW DELETE FROM `{live}`.`t` ;;\n"
        "DELIMITER ;\nINSERT INTO `t` VALUES (5);\n",
        "PREPARE s FROM CONCAT('DELETE FROM ', '{live}', '.t');\nEXECUTE s;\n",
    ],
)
def test_mysql_restore_to_scratch__statements_naming_the_live_schema_are_refused(live, tmp_path, attack):
    server, name = live
    dump = HEAD + attack.format(live=name).encode() + TAIL
    adapter = adapter_for(server, name)
    with pytest.raises(RestoreError) as caught:
        adapter.restore_to_scratch(io.BytesIO(dump), workdir=tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert "refused while loading it into scratch schema" in message, message
    assert server.query(f"SELECT id FROM `{name}`.`t`") == [(1,)]  # the live table is unchanged
    assert server.databases(name) == [name]  # no scratch schema left behind
    assert server.databases("smsec_evil") == []


def test_mysql_restore_to_scratch__an_honest_dump_loads(live, tmp_path):
    server, name = live
    dump = (
        HEAD + b"LOCK TABLES `t` WRITE;\n/*!40000 ALTER TABLE `t` DISABLE KEYS */;\n"
        b"INSERT INTO `t` VALUES\n(1),\n(2);\nINSERT INTO `t` VALUES (3),(4);\n"
        b"/*!40000 ALTER TABLE `t` ENABLE KEYS */;\nUNLOCK TABLES;\n"
        b"CREATE TABLE `status` (`reset` int, `use` varchar(40) DEFAULT 'a;b', `kill` int);\n"
        b"INSERT INTO `status` VALUES\n(1,'it''s; \\\\u use x.y',NULL);\n" + TAIL
    )
    adapter = adapter_for(server, name)
    scratch = adapter.restore_to_scratch(io.BytesIO(dump), workdir=tmp_path)
    try:
        assert adapter.row_counts(scratch) == {"status": 1, "t": 4}
    finally:
        adapter.drop_scratch(scratch)


def test_verifybackup__a_dump_naming_the_live_schema_is_refused_and_live_data_kept(tmp_path):
    """The whole Verify path, on a real backup edited to reach into the live schema."""
    import hashlib
    import json

    import zstandard

    from tests.safemigrate.vendors.servers import make_live_db

    server = require("mysql")
    db = make_live_db(server, tmp_path)
    try:
        name = db.backup()["name"]
        path = db.backup_dir / name
        raw = zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())
        attack = f"DELETE FROM `{db.name}`.`auth_permission`;\n".encode()
        crafted = raw.replace(b"-- Dump completed", attack + b"-- Dump completed", 1)
        data = zstandard.ZstdCompressor(write_checksum=True, write_content_size=True).compress(crafted)
        path.write_bytes(data)
        manifest_path = db.backup_dir / f"{name}.manifest.json"
        manifest = json.loads(manifest_path.read_text())
        manifest.update(
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            raw_size=len(crafted),
            raw_sha256=hashlib.sha256(crafted).hexdigest(),
            verified=False,
        )
        manifest_path.write_text(json.dumps(manifest))
        before = db.content()
        assert before["auth_permission"]

        result = db.run("verifybackup", "--trust-file", name)
        assert result.returncode == 1
        failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
        assert len(failed) == 1, result.stdout
        assert "names another schema" in failed[0]
        assert db.content() == before  # the live tables are unchanged
        assert db.leftovers() == []
    finally:
        for each in server.databases(db.name):
            server.drop(each)


def test_mysql_verify_load__runs_as_the_scratch_account(live, tmp_path, settings):
    """With SAFEMIGRATE_SCRATCH_USER, the dump is loaded and counted by an account that has
    rights on the scratch schemas only (the documented wildcard grant)."""
    server, name = live
    account = f"smsec_scr_{secrets.token_hex(3)}"
    server.query(f"CREATE USER '{account}'@'%'")
    try:
        pattern = name.replace("_", "\\_") + "\\_smscratch\\_%"
        server.query(f"GRANT ALL ON `{pattern}`.* TO '{account}'@'%'")
        settings.SAFEMIGRATE_SCRATCH_USER = account
        adapter = adapter_for(server, name)
        adapter.confine_scratch = True
        dump = HEAD + b"INSERT INTO `t` VALUES (1),(2);\nSELECT CURRENT_USER() INTO @who;\n" + TAIL
        scratch = adapter.restore_to_scratch(io.BytesIO(dump), workdir=tmp_path)
        try:
            assert scratch.account == (account, "")  # counted and checked as that account
            assert adapter.row_counts(scratch) == {"t": 2}
            assert adapter.integrity_errors(scratch) == []
            conn = adapter._connect(scratch.name, account=scratch.account)
            try:
                with conn.cursor() as cursor:
                    cursor.execute("SELECT CURRENT_USER()")
                    assert cursor.fetchone()[0].startswith(account)
                    with pytest.raises(Exception, match="denied"):
                        cursor.execute(f"SELECT * FROM `{name}`.`t`")  # the live schema is out of reach
            finally:
                conn.close()
        finally:
            adapter.drop_scratch(scratch)
    finally:
        server.query(f"DROP USER '{account}'@'%'")


def test_mysql_restore_to_scratch__a_routine_under_another_charset_changes_the_scratch_not_live(
    live, tmp_path
):
    """mariadb-dump wraps such a routine in ``ALTER DATABASE `live` CHARACTER SET …``: run as
    written it would change the live schema; it is run on the scratch schema instead."""
    server, name = live
    server.query(f"ALTER DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
    server.query("CREATE FUNCTION answer() RETURNS int DETERMINISTIC RETURN 42", database=name)
    server.query(f"ALTER DATABASE `{name}` CHARACTER SET latin1 COLLATE latin1_swedish_ci")
    adapter = adapter_for(server, name)
    dump = io.BytesIO()
    adapter.snapshot(dump, workdir=tmp_path)
    assert f"ALTER DATABASE `{name}` CHARACTER SET".encode() in dump.getvalue()
    scratch = adapter.restore_to_scratch(io.BytesIO(dump.getvalue()), workdir=tmp_path)
    try:
        assert server.query(f"SELECT `{scratch.name}`.answer()") == [(42,)]
    finally:
        adapter.drop_scratch(scratch)
    charset = "SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s"
    assert server.query(charset, (name,)) == [("latin1",)]
