"""Fixtures for the JSON dump tests: a realistic database, emptied again on demand."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from tests.safemigrate.jsondump.data import add_fitness_data


@pytest.fixture
def fitness_data(transactional_db, backup_dir) -> None:
    """The test database filled with seed_demo's data, accounts and awkward values."""
    add_fitness_data()


def empty_database() -> None:
    """Back to a freshly migrated database: no rows, content types and permissions recreated."""
    call_command("flush", interactive=False, verbosity=0)
