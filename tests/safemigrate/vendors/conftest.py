"""Fixtures for the server engines: one migrated throwaway database per engine and module."""

from __future__ import annotations

import pytest

from tests.safemigrate.vendors.servers import LiveDB, make_live_db, require


@pytest.fixture(scope="module", params=["postgresql", "mysql"])
def db(request, tmp_path_factory) -> LiveDB:
    """A fully migrated database on the real server, dropped (with any leftovers) afterwards."""
    server = require(request.param)
    live = make_live_db(server, tmp_path_factory.mktemp(request.param))
    yield live
    for name in server.databases(live.name):
        server.drop(name)
