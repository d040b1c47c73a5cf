"""Fixtures shared by safemigrate's tests.

Without django-q2 (safemigrate installed without its ``tasks`` extra), its task tests are not collected.
"""

from __future__ import annotations

import importlib.util
import os
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

collect_ignore_glob = (
    [] if importlib.util.find_spec("django_q") else ["tasks/*.py", "offsite/test_offsite.py"]
)


@pytest.fixture
def at_0001(backup_dir):
    """migrapp back at 0001 with three items: 0002 is pending."""
    call_command("migrate", "migrapp", "0001", stdout=StringIO(), verbosity=0)
    with connection.cursor() as cursor:
        for n in range(3):
            cursor.execute("INSERT INTO migrapp_item (name, qty) VALUES (%s, %s)", [f"item{n}", n])
    yield backup_dir
    os.environ.pop("MIGRAPP_FAIL", None)
    call_command("migrate", "migrapp", stdout=StringIO(), verbosity=0)
