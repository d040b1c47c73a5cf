"""Notifications: real webhooks to a local HTTP receiver, mail through Django's outbox."""

from __future__ import annotations

import socket
from io import StringIO

import pytest
from django.core import checks, mail
from django.core.management import CommandError, call_command
from django_q.models import Task

from safemigrate.backup import create_backup

pytestmark = pytest.mark.django_db(transaction=True)


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/gone"


def warning_ids() -> set[str]:
    return {m.id for m in checks.run_checks(databases=["default"])}


def test_notify__rolled_back_migration_reaches_every_channel(at_0001, hooks, settings, monkeypatch):
    settings.SAFEMIGRATE_NOTIFY_MAIL_ADMINS = True
    settings.ADMINS = [("Ops", "ops@example.com")]
    monkeypatch.setenv("MIGRAPP_FAIL", "1")
    with pytest.raises(CommandError, match="failed"):
        call_command("migrate", stdout=StringIO())
    [slack] = hooks.bodies("/slack")
    [discord] = hooks.bodies("/discord")
    [plain] = hooks.bodies("/json")
    title = "Migration of database 'default' failed and was undone"
    assert slack["text"].startswith(f"*{title}*\nmigration migrapp.0002_item_note: MIGRAPP_FAIL")
    assert discord["content"].startswith(f"**{title}**\n")
    assert plain["event"] == "migration_rolled_back"
    assert plain["failure"] is True
    assert plain["database"] == "default"
    assert "The migration was undone; the pre-migration backup backup-pre_migrate-" in plain["text"]
    [message] = mail.outbox
    assert message.to == ["ops@example.com"]
    assert title in message.subject
    sent = Task.objects.filter(func="safemigrate.tasks.send_notification")
    assert sorted(t.args[0] for t in sent) == ["discord:1", "mail", "slack:1", "webhook:1"]
    assert all(t.success and t.result["ok"] for t in sent)


def test_notify__level_failures_sends_no_success_events(backup_dir, hooks):
    create_backup(alias="default")
    assert hooks.posts == []


def test_notify__level_all_sends_a_made_backup(backup_dir, hooks, settings):
    settings.SAFEMIGRATE_NOTIFY_LEVEL = "all"
    made = create_backup(alias="default").manifest
    [plain] = hooks.bodies("/json")
    assert (plain["event"], plain["failure"]) == ("backup_created", False)
    assert made.name in plain["text"]
    assert len(hooks.posts) == 3


def test_notify__level_off_sends_nothing(at_0001, hooks, settings, monkeypatch):
    settings.SAFEMIGRATE_NOTIFY_LEVEL = "off"
    monkeypatch.setenv("MIGRAPP_FAIL", "1")
    with pytest.raises(CommandError):
        call_command("migrate", stdout=StringIO())
    assert hooks.posts == []


def test_notify__retries_until_the_receiver_answers(backup_dir, hooks, settings):
    settings.SAFEMIGRATE_NOTIFY_SLACK = settings.SAFEMIGRATE_NOTIFY_DISCORD = []
    settings.SAFEMIGRATE_NOTIFY_LEVEL = "all"
    hooks.statuses = [500, 503]
    create_backup(alias="default")
    assert len(hooks.bodies("/json")) == 3
    task = Task.objects.get(func="safemigrate.tasks.send_notification")
    assert task.result == {**task.result, "ok": True, "attempts": 3}
    assert "safemigrate.W013" not in warning_ids()


def test_notify__a_dead_receiver_never_fails_the_migration_and_is_shown(
    at_0001, receiver, settings, admin_client, caplog
):
    """Three refused tries: logged, recorded, a W013 warning and an admin banner; migrate succeeds."""
    dead = closed_port_url()
    settings.SAFEMIGRATE_NOTIFY_WEBHOOKS = [dead]
    settings.SAFEMIGRATE_NOTIFY_LEVEL = "all"
    settings.SAFEMIGRATE_NOTIFY_RETRY_DELAY = 0
    out = StringIO()
    call_command("migrate", stdout=out)
    assert "Applied 1 migration(s) safely" in out.getvalue()
    assert "notification migration_applied to webhook:1 failed after 3 tries" in caplog.text
    [warning] = [m for m in checks.run_checks(databases=["default"]) if m.id == "safemigrate.W013"]
    assert "webhook:1" in warning.msg
    assert "unreachable" in warning.msg
    page = admin_client.get("/admin/safemigrate/backup/").content.decode()
    assert "notifications via webhook:1 are failing" in page
    # The URL (a secret for Slack and Discord) is in neither the log, the warning nor the page.
    address = dead.split("/")[2]  # 127.0.0.1:PORT
    assert address not in caplog.text + warning.msg + page

    settings.SAFEMIGRATE_NOTIFY_WEBHOOKS = [receiver.url("/json")]
    call_command("notifytest", stdout=StringIO())
    assert "safemigrate.W013" not in warning_ids()  # a later success clears it


def test_notify__mail_admins_without_admins_is_a_recorded_failure(backup_dir, settings):
    settings.SAFEMIGRATE_NOTIFY_MAIL_ADMINS = True
    settings.SAFEMIGRATE_NOTIFY_RETRY_DELAY = 0
    settings.ADMINS = []
    with pytest.raises(
        CommandError, match=r"^notification failed on 1 of 1 channel\(s\): mail \(.*ADMINS is empty\)"
    ):
        call_command("notifytest", stdout=StringIO())
    assert mail.outbox == []
    assert "safemigrate.W013" in warning_ids()


def test_notifytest__sends_to_every_channel(backup_dir, hooks, settings):
    settings.SAFEMIGRATE_NOTIFY_MAIL_ADMINS = True
    settings.ADMINS = [("Ops", "ops@example.com")]
    out = StringIO()
    call_command("notifytest", stdout=out)
    assert out.getvalue().splitlines() == [
        "mail: sent",
        "slack:1: sent",
        "discord:1: sent",
        "webhook:1: sent",
        "Test notification sent to 4 channel(s).",
    ]
    assert hooks.bodies("/json")[0]["event"] == "test"
    assert mail.outbox[0].subject.endswith("Test notification from safemigrate")


def test_notifytest__nothing_configured_is_one_clear_line(backup_dir):
    with pytest.raises(CommandError, match="^no notification channel is configured; set SAFEMIGRATE_NOTIFY_"):
        call_command("notifytest", stdout=StringIO())


def test_notifytest__refused_http_status_names_the_channel_not_the_url(backup_dir, hooks, settings):
    settings.SAFEMIGRATE_NOTIFY_SLACK = settings.SAFEMIGRATE_NOTIFY_DISCORD = []
    hooks.statuses = [404, 404, 404]
    with pytest.raises(CommandError) as failed:
        call_command("notifytest", stdout=StringIO())
    assert str(failed.value) == (
        "notification failed on 1 of 1 channel(s): webhook:1 (127.0.0.1 answered HTTP 404)"
    )


def test_notify__scheduled_verification_alerts_on_a_monitor(backup_dir, hooks, settings):
    """The verify schedule runs the monitors: a problem becomes a backups_stale notification."""
    from safemigrate import tasks

    settings.SAFEMIGRATE_MIN_FREE_SPACE_MB = 1e12  # a petabyte: never free on a test machine
    create_backup(alias="default")
    result = tasks.verify_backups("default")
    assert result["problems"] == ["safemigrate.W011"]
    [plain] = hooks.bodies("/json")
    assert plain["event"] == "backups_stale"
    assert plain["title"] == "Backups of database 'default' need attention"
    assert plain["text"].startswith("safemigrate.W011: only ")


def test_notify__a_failing_channel_is_a_warning_the_endpoint_stays_200(backup_dir, settings, live_server):
    """Notifications that cannot be delivered do not make the backups unsafe: 200, W013 a warning."""
    import json
    import urllib.request

    settings.SAFEMIGRATE_NOTIFY_WEBHOOKS = [closed_port_url()]
    settings.SAFEMIGRATE_NOTIFY_LEVEL = "all"
    settings.SAFEMIGRATE_NOTIFY_RETRY_DELAY = 0
    create_backup(alias="default")
    assert "safemigrate.W013" in warning_ids()
    with urllib.request.urlopen(f"{live_server.url}/healthz/backups", timeout=30) as response:  # noqa: S310
        assert response.status == 200
        [db] = json.loads(response.read())["databases"]
    assert db["healthy"] is True
    assert db["problems"] == []
    assert db["warnings"] == ["safemigrate.W013"]
    out = StringIO()
    call_command("backuphealth", stdout=out)  # exit 0: healthy, the warning in the text
    assert "safemigrate.W013: notifications via webhook:1 are failing" in out.getvalue()
