"""The restore button: a confirmation page showing what will change, then a POST that restores."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from safemigrate.models import Backup
from tests.migrapp.models import Item

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = reverse("admin:safemigrate_backup_changelist")


def url(name: str, backup: Backup) -> str:
    return reverse(f"admin:safemigrate_backup_{name}", args=[backup.pk])


@pytest.fixture
def migrapp_at_0001(backup_dir):
    """migrapp un-applied back to 0001 (0002 pending); migrated forward again afterwards."""
    call_command("migrate", "migrapp", "0001", stdout=StringIO(), verbosity=0)
    yield
    call_command("migrate", "migrapp", stdout=StringIO(), verbosity=0)


def test_restore_get__shows_migrations_and_row_counts_then_vs_now(admin_client, migrapp_at_0001, make_backup):
    """The page lists the migration the restore un-applies and each table's rows now vs after."""
    with connection.cursor() as cursor:  # the model has a column that 0001 lacks: plain SQL
        cursor.execute("INSERT INTO migrapp_item (name, qty) VALUES ('in the backup', 1)")
    backup = make_backup()
    call_command("migrate", "migrapp", stdout=StringIO(), verbosity=0)
    Item.objects.create(name="new 1")
    Item.objects.create(name="new 2")

    response = admin_client.get(url("restore", backup))

    assert response.status_code == 200
    html = response.content.decode()
    assert backup.name in html
    assert "A safety backup of the current database is taken first" in html
    assert "This migration will be un-applied:" in html
    assert "<li><code>migrapp.0002_item_note</code></li>" in html
    preview = response.context["preview"]
    assert preview.to_unapply == ["migrapp.0002_item_note"]
    assert ("migrapp_item", 1, 3) in preview.row_counts
    row = '<tr class="changed" data-table="migrapp_item"><td>migrapp_item</td><td>3</td><td>1</td>'
    assert row in html
    assert '<tr class="changed"><td>migrapp</td><td>0001_initial</td><td>0002_item_note</td></tr>' in html
    assert '<input type="submit" id="safemigrate-confirm-restore"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert Item.objects.count() == 3  # GET changed nothing


def test_restore_post__brings_the_data_back(admin_client, make_backup, backup_dir):
    Item.objects.create(name="before")
    backup = make_backup()
    Item.objects.create(name="after the backup")
    Item.objects.filter(name="before").update(qty=99)

    response = admin_client.post(url("restore", backup))

    assert response.status_code == 302
    assert response["Location"] == CHANGELIST
    assert list(Item.objects.values_list("name", "qty")) == [("before", 0)]
    [safety] = backup_dir.glob("backup-pre_restore-*.zst")
    assert Backup.objects.filter(name=safety.name).exists()  # catalogue resynced from the folder
    page = admin_client.get(CHANGELIST)
    assert page.status_code == 200  # still logged in: the restorer's own login is saved again
    [message] = [str(m) for m in page.context["messages"]]
    assert message.startswith(f"Restored {backup.name} (")
    assert message.endswith(f"The state before the restore is in the safety backup {safety.name}.")


def test_restore_post__session_gone_lands_on_login_with_a_message(client, make_backup, django_user_model):
    """The backup predates this user: after the restore the login is gone, and the page says so."""
    backup = make_backup()
    user = django_user_model.objects.create_superuser("late", password="pw")
    client.force_login(user)

    response = client.post(url("restore", backup), follow=True)

    assert response.status_code == 200
    assert response.redirect_chain == [
        (CHANGELIST, 302),
        (f"{reverse('admin:login')}?next={CHANGELIST}", 302),
    ]
    html = response.content.decode()
    assert "Your session was not in the restored database: please log in again." in html
    assert f"Restored {backup.name}" in html
    assert not django_user_model.objects.filter(username="late").exists()


def test_restore_post__missing_file_is_a_message_and_changes_nothing(admin_client, backup):
    Item.objects.create(name="after the backup")
    Path(backup.path).unlink()
    response = admin_client.post(url("restore", backup), follow=True)
    assert response.redirect_chain == [(url("change", backup), 302)]
    [message] = [str(m) for m in response.context["messages"]]
    assert message == (f"backup file {backup.path} is missing; it cannot be restored. Restore another backup")
    assert Item.objects.filter(name="after the backup").exists()


def test_restore_post__damaged_file_is_a_message_and_changes_nothing(admin_client, backup):
    Item.objects.create(name="after the backup")
    data = bytearray(Path(backup.path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(backup.path).write_bytes(bytes(data))
    response = admin_client.post(url("restore", backup), follow=True)
    assert response.status_code == 200
    [message] = [str(m) for m in response.context["messages"]]
    assert message.startswith("Restore failed: ")
    assert Item.objects.filter(name="after the backup").exists()


def test_restore_post__works_with_atomic_requests(admin_client, make_backup, monkeypatch):
    """ATOMIC_REQUESTS would wrap the view in a transaction, in which no restore can run."""
    from django.db import connection as conn

    backup = make_backup()
    Item.objects.create(name="after the backup")
    monkeypatch.setitem(conn.settings_dict, "ATOMIC_REQUESTS", True)
    response = admin_client.post(url("restore", backup), follow=True)
    assert response.status_code == 200
    assert not Item.objects.exists()
    [message] = [str(m) for m in response.context["messages"]]
    assert message.startswith(f"Restored {backup.name} (")
