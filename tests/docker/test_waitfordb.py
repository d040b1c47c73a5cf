"""``waitfordb`` in-process: the entrypoint's wait (the timeouts are covered in test_entrypoint)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command


@pytest.mark.django_db
def test_waitfordb__returns_at_once_when_the_database_answers_and_is_migrated():
    err = StringIO()
    call_command("waitfordb", "--timeout", "0", "--migrated", stdout=StringIO(), stderr=err)
    assert err.getvalue() == ""


def test_waitfordb__rejects_a_negative_timeout():
    with pytest.raises(CommandError, match=r"^--timeout must be >= 0 and --interval > 0$"):
        call_command("waitfordb", "--timeout", "-1")
