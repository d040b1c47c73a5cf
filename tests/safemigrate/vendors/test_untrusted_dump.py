"""A crafted MariaDB dump cannot read the app host's files while it is loaded into a scratch copy."""

from __future__ import annotations

import io

import pytest

from safemigrate.exceptions import RestoreError
from tests.safemigrate.vendors.servers import adapter_for, require, unique_name


def test_mysql_restore_to_scratch__load_data_local_infile_is_refused(tmp_path):
    """The review read /proc/self/environ of the app host into a table during a Verify."""
    server = require("mysql")
    name = unique_name("mysql")
    server.create(name)
    secret = tmp_path / "environ"
    secret.write_text("SECRET_KEY=hunter2\n")
    dump = (
        b"-- MariaDB dump (crafted)\nCREATE TABLE `leak` (`t` TEXT);\n"
        + f"LOAD DATA LOCAL INFILE '{secret}' INTO TABLE `leak`;\n".encode()
        + b"-- Dump completed on 2026-01-01\n"
    )
    try:
        adapter = adapter_for(server, name)
        with pytest.raises(RestoreError, match=r"(?i)local infile|not allowed"):
            adapter.restore_to_scratch(io.BytesIO(dump), workdir=tmp_path)
        assert [n for n in server.databases(name) if n != name] == []  # the scratch copy is gone
    finally:
        for each in server.databases(name):
            server.drop(each)
