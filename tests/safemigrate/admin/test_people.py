"""What people see in the admin: a failed verification as its own state, an honest restore
preview, the admin's own 403 page, readable banners, durations and messages (issue #15)."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from safemigrate.admin import human_duration, inline_code
from safemigrate.codec import mac_of
from safemigrate.manifest import authentication_problem, read_manifest
from safemigrate.models import Backup, MigrationRun

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = reverse("admin:safemigrate_backup_changelist")


def url(name: str, backup: Backup) -> str:
    return reverse(f"admin:safemigrate_backup_{name}", args=[backup.pk])


def damage(backup: Backup) -> None:
    data = bytearray(Path(backup.path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(backup.path).write_bytes(bytes(data))


def listed(client, **params) -> list[Backup]:
    return list(client.get(CHANGELIST, params).context["cl"].result_list)


# --- a failed verification is its own state --------------------------------------------------


def test_verify__failure_is_recorded_in_manifest_and_catalogue_and_shown_red(admin_client, make_backup):
    never = make_backup()
    Backup.objects.filter(pk=never.pk).update(verified=False)  # "not verified" stays its own state
    backup = make_backup()
    damage(backup)

    admin_client.post(url("verify", backup))

    failure = read_manifest(backup.manifest_path).verification_failure
    assert failure is not None
    assert "is damaged" in failure["error"]
    assert not read_manifest(backup.manifest_path).verified
    backup.refresh_from_db()
    assert not backup.verified
    assert backup.verification_failed_at is not None
    assert backup.verification_error == failure["error"]
    html = admin_client.get(CHANGELIST).content.decode()
    [cell] = re.findall(
        r'<strong class="safemigrate-bad safemigrate-failed" title="([^"]*)">FAILED</strong>', html
    )
    assert failure["error"][:30] in cell.replace("&#x27;", "'")
    assert 'class="safemigrate-quiet">not yet<' in html  # the never-verified one is not red
    change = admin_client.get(url("change", backup)).content.decode()
    assert "Restore (failed verification!)" in change
    assert "verification failure" in change.lower()


def test_list_filter__verification_ok_failed_not_verified(admin_client, make_backup):
    ok, failed, never = make_backup(), make_backup(), make_backup()
    damage(failed)
    admin_client.post(url("verify", failed))
    Backup.objects.filter(pk=never.pk).update(verified=False)
    assert listed(admin_client, verification="ok") == [ok]
    assert listed(admin_client, verification="failed") == [failed]
    assert listed(admin_client, verification="none") == [never]


def test_rescan__rebuilds_the_failed_state_from_the_folder(admin_client, backup):
    damage(backup)
    admin_client.post(url("verify", backup))
    Backup.objects.all().delete()
    call_command("backups", "--rescan", stdout=StringIO())
    row = Backup.objects.get(name=backup.name)
    assert row.verification_failed_at is not None
    assert row.verification_error
    assert not row.verified


def test_verify__passing_again_clears_the_failure(admin_client, backup):
    good = Path(backup.path).read_bytes()
    damage(backup)
    admin_client.post(url("verify", backup))
    Path(backup.path).write_bytes(good)
    admin_client.post(url("verify", backup))
    assert read_manifest(backup.manifest_path).verification_failure is None
    backup.refresh_from_db()
    assert backup.verified
    assert backup.verification_failed_at is None
    assert backup.verification_error == ""


def test_restore_button__failed_backup_warns_before_the_confirmation_page(admin_client, backup):
    damage(backup)
    admin_client.post(url("verify", backup))
    warning = admin_client.get(url("restore", backup))
    assert warning.status_code == 200
    html = warning.content.decode()
    assert 'id="safemigrate-failed-warning"' in html
    assert f"{backup.name} failed verification on " in html
    assert "safemigrate-confirm-restore" not in html  # no restore button yet
    assert 'href="?failed_ok=1"' in html
    confirm = admin_client.get(url("restore", backup), {"failed_ok": "1"}).content.decode()
    assert "safemigrate-confirm-restore" in confirm
    assert "verification FAILED" in confirm


def test_manifest__older_signed_manifests_still_authenticate(backup):
    """The new field is left out of the MAC while empty, so manifests signed before it stay valid."""
    key = "k" * 32
    data = json.loads(backup.manifest_path.read_text())
    for newer in ("verification_failure", "pinned_until"):
        data.pop(newer, None)  # as the previous version wrote it
    data["encryption"] = "aes-256-gcm"
    data["mac"] = mac_of({k: v for k, v in data.items() if k != "mac"}, key)
    backup.manifest_path.write_text(json.dumps(data))
    assert authentication_problem(read_manifest(backup.manifest_path), key) is None


# --- the restore preview ---------------------------------------------------------------------


def test_restore_preview__catalogue_is_said_to_be_rebuilt_not_lost(admin_client, backup):
    response = admin_client.get(url("restore", backup))
    html = response.content.decode()
    assert 'data-table="safemigrate_backup"' not in html
    assert "rebuilt from the backup folder" in html
    assert "<code>safemigrate_backup</code>" in html
    assert all(table != "safemigrate_backup" for table, *_ in response.context["row_counts"])


def test_restore_preview__warns_a_user_who_is_not_in_the_backup(client, make_backup, django_user_model):
    django_user_model.objects.create_superuser("early", password="pw")
    backup = make_backup()
    late = django_user_model.objects.create_superuser("late", password="pw")
    client.force_login(late)
    html = client.get(url("restore", backup)).content.decode()
    assert 'id="safemigrate-login-warning"' in html
    assert "Your account late was created after this backup" in html
    assert "cannot log in as late" in html


def test_restore_preview__warns_when_the_backup_has_no_users(client, make_backup, django_user_model):
    backup = make_backup()
    client.force_login(django_user_model.objects.create_superuser("late", password="pw"))
    html = client.get(url("restore", backup)).content.decode()
    assert "The backup has no user accounts: after the restore you (late) will be logged out" in html


def test_restore_preview__no_login_warning_for_a_user_in_the_backup(client, django_user_model, make_backup):
    user = django_user_model.objects.create_superuser("early", password="pw")
    backup = make_backup()
    client.force_login(user)
    assert 'id="safemigrate-login-warning"' not in client.get(url("restore", backup)).content.decode()


# --- the admin's own 403 page ------------------------------------------------------------------


def test_403__staff_without_permission_get_the_admin_page_naming_it(staff_client, backup):
    response = staff_client.post(url("verify", backup))
    assert response.status_code == 403
    html = response.content.decode()
    assert 'id="safemigrate-missing-permission"' in html
    assert "“Can change backup” (<code>safemigrate.change_backup</code>)" in html
    assert 'id="site-name"' in html  # admin/base_site.html, not the bare 403
    restore = staff_client.get(url("restore", backup)).content.decode()
    assert "needs a superuser with the permission" in restore
    assert "safemigrate.restore_backup" in restore


def test_403__django_views_too(staff_client, backup):
    """Delete (Django's own view) without delete_backup: the same page, naming that permission."""
    response = staff_client.get(reverse("admin:safemigrate_backup_delete", args=[backup.pk]))
    assert response.status_code == 403
    assert "<code>safemigrate.delete_backup</code>" in response.content.decode()


# --- readable banners, durations and messages -----------------------------------------------


def test_banner__backticks_are_code_not_literal(admin_client, backup_dir):
    from tests.migrapp.models import Item

    Item.objects.create(name="precious")  # data and no verified backup: W001
    html = admin_client.get(CHANGELIST).content.decode()
    banner = re.search(r'<ul class="messagelist safemigrate-health">(.*?)</ul>', html, re.S)
    assert banner is not None
    assert "Make one with <code>manage.py backup</code> or" in banner[1]
    assert "`" not in banner[1]


def test_inline_code__escapes_first():
    assert inline_code("run `manage.py backup` <now>") == "run <code>manage.py backup</code> &lt;now&gt;"
    assert inline_code("`<script>`") == "<code>&lt;script&gt;</code>"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.3304451730000437, "0.33 s"),
        (12.44, "12.4 s"),
        (125, "2 min 5 s"),
        (120, "2 min"),
        (3725, "1 h 2 min"),
    ],
)
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


def test_migration_run__duration_is_humane_and_long_errors_are_cut_with_the_full_text_kept(admin_client):
    from django.utils import timezone

    error = "the migration failed: " + "x" * 400
    run = MigrationRun.objects.create(
        started=timezone.now(), duration=0.3304451730000437, status="rolled_back", error=error
    )
    html = admin_client.get(reverse("admin:safemigrate_migrationrun_changelist")).content.decode()
    assert "0.33 s" in html
    assert "0.3304451730000437" not in html
    assert f'title="{error}"' in html
    assert reverse("admin:safemigrate_migrationrun_change", args=[run.pk]) in html
    assert "x" * 100 not in html.replace(f'title="{error}"', "")
    page = admin_client.get(reverse("admin:safemigrate_migrationrun_change", args=[run.pk])).content.decode()
    assert error in page
    assert "0.33 s" in page
    assert "0.3304451730000437" not in page


def test_messages__do_not_capitalise_file_names(admin_client, backup):
    response = admin_client.post(url("verify", backup), follow=True)
    html = response.content.decode()
    assert f"Verified {backup.name}:" in html
    assert backup.name[0].upper() + backup.name[1:] not in html
