"""``restore``'s own options: --list, and the refusals of options that do not go together."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db(transaction=True)


def test_restore_list__prints_what_backups_prints(backup_dir):
    out = StringIO()
    call_command("backup", format="json", stdout=out, stderr=StringIO())
    name = json.loads(out.getvalue())["name"]
    listed, catalogue = StringIO(), StringIO()
    call_command("restore", list=True, stdout=listed, stderr=StringIO())
    call_command("backups", stdout=catalogue, stderr=StringIO())
    assert name in listed.getvalue()
    assert listed.getvalue() == catalogue.getvalue()


def test_restore_list__without_backups_says_how_to_make_one(backup_dir):
    out = StringIO()
    call_command("restore", "--list", stdout=out, stderr=StringIO())
    assert out.getvalue() == "No backups yet. Make one with: python manage.py backup\n"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"json": "dump.json"}, "give a backup id/name or --json, not both"),
        ({"from_storage": "x"}, "give a backup id/name or --from-storage NAME, not both"),
        ({"file": "x"}, "give a backup id/name or --file, not both"),
        ({"latest": True}, "give a backup id/name or --latest, not both"),
        ({"replace": True, "latest": True}, "--replace goes with --json FILE"),
    ],
)
def test_restore__refuses_options_that_do_not_go_together(backup_dir, options, message):
    with pytest.raises(CommandError, match=f"^{message}$"):
        call_command("restore", "1", stdout=StringIO(), stderr=StringIO(), interactive=False, **options)


def test_restore__without_a_backup_asks_which(backup_dir):
    with pytest.raises(CommandError, match=r"^which backup\? give an id or name"):
        call_command("restore", stdout=StringIO(), stderr=StringIO(), interactive=False)
