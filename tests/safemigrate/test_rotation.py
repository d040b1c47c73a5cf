"""Rotation: the newest N or a grandfather-father-son policy per class; never the newest verified
or a pinned one; the size cap; what --dry-run says."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core import checks
from django.core.management import CommandError, call_command

from safemigrate.catalogue import list_backups, record
from safemigrate.codec import mac_of
from safemigrate.manifest import check_trusted, read_manifest, update_manifest
from safemigrate.models import Backup
from safemigrate.rotation import Decision, Item, RetentionPolicy, decide, retention_policy, rotate_backups

pytestmark = pytest.mark.django_db(transaction=True)


def make_backups(n: int) -> list[str]:
    names = []
    for i in range(n):
        out = StringIO()
        call_command("backup", reason=f"r{i}", format="json", stdout=out, stderr=StringIO())
        names.append(json.loads(out.getvalue())["name"])
    return names


def test_cleanupbackups__keeps_newest_and_pinned(backup_dir):
    names = make_backups(5)  # oldest first
    oldest = next(m for m in list_backups(alias="default") if m.name == names[0])
    update_manifest(oldest, pinned=True)
    out = StringIO()
    call_command("cleanupbackups", keep=2, stdout=out)
    left = {m.name for m in list_backups(alias="default")}
    assert left == {names[0], names[3], names[4]}
    assert "Deleted 2 backup(s); 3 kept." in out.getvalue()
    for gone in (names[1], names[2]):
        assert not (backup_dir / gone).exists()
        assert not (backup_dir / f"{gone}.manifest.json").exists()


def test_cleanupbackups__dry_run_deletes_nothing(backup_dir):
    make_backups(3)
    out = StringIO()
    call_command("cleanupbackups", keep=1, dry_run=True, format="json", stdout=out)
    assert len(json.loads(out.getvalue())["deleted"]) == 2
    assert len(list_backups(alias="default")) == 3


def test_rotation__never_deletes_newest_verified(backup_dir):
    names = make_backups(3)
    for manifest in list_backups(alias="default"):
        if manifest.name != names[0]:
            update_manifest(manifest, verified=False)
    result = rotate_backups(alias="default", keep=1)
    assert names[0] not in result.deleted
    assert set(result.deleted) == {names[1]}


def test_cleanupbackups__bad_keep(backup_dir):
    with pytest.raises(CommandError, match="--keep must be at least 1"):
        call_command("cleanupbackups", keep=0)


def test_safemigrate__queues_rotation_after_success(backup_dir, settings):
    settings.SAFEMIGRATE_KEEP = 1
    make_backups(3)
    call_command("migrate", "migrapp", "0001", stdout=StringIO())
    try:
        # The task ran (sync broker in tests): one backup kept per reason class.
        assert sorted(m.reason for m in list_backups(alias="default")) == ["pre_migrate", "r2"]
    finally:
        call_command("migrate", "migrapp", stdout=StringIO(), verbosity=0)


def test_rotation__standalone_json_dumps_are_rotated_too(backup_dir):
    from safemigrate.jsondump import create_json_dump

    dumps = [create_json_dump(alias="default").path for _ in range(3)]  # oldest first
    result = rotate_backups(alias="default", keep=1)
    assert sorted(result.deleted) == sorted(p.name for p in dumps[:2])
    assert dumps[2].exists()
    for gone in dumps[:2]:
        assert not gone.exists()
        assert not gone.with_name(gone.name + ".dump-manifest.json").exists()


# --- the policy, as pure functions over synthetic dates ------------------------------------------

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def item(name: str, age_days: float, group: str = "scheduled", **kwargs) -> Item:
    return Item(name=name, created=NOW - timedelta(days=age_days), group=group, **kwargs)


def why(decisions: list[Decision]) -> dict[str, tuple[bool, str]]:
    return {d.name: (d.keep, d.why) for d in decisions}


def test_policy__grandfather_father_son_periods_follow_each_other():
    policy = RetentionPolicy(keep_all_days=2, daily_days=3, weekly_weeks=2, monthly_months=2, yearly_years=1)
    items = [
        item("a-today", 0.1),
        item("b-yesterday-late", 1.0),
        item("c-yesterday-early", 1.2),  # still inside "every backup for 2 days"
        item("d-day3-late", 2.1),  # 2026-11-27 10:00: daily
        item("e-day3-early", 2.4),  # 2026-11-27 02:24: same day, older: goes
        item("f-day4", 3.5),  # 2026-11-26 00:00 (the daily window ends 2026-11-24 12:00)
        item("g-week-late", 6.0),  # 2026-11-23 12:00, a Monday: ISO week 48
        item("h-week-early", 6.5),  # 2026-11-23 00:00: week 48 again, older than g
        item("i-week47", 7.0),  # 2026-11-22 12:00, a Sunday: week 47
        item("j-month", 30.0),  # 2026-10-30: monthly 2026-10
        item("k-month-older", 33.0),  # 2026-10-27: monthly 2026-10 again
        item("l-year", 200.0),  # 2026-05-13: yearly 2026 (monthly window ends 2026-09-10)
        item("m-year-older", 250.0),  # yearly 2026 again
        item("n-ancient", 800.0),  # beyond every period
    ]
    assert why(decide(items, now=NOW, policy=policy)) == {
        "a-today": (True, "every backup for 2 days"),
        "b-yesterday-late": (True, "every backup for 2 days"),
        "c-yesterday-early": (True, "every backup for 2 days"),
        "d-day3-late": (True, "daily 2026-11-27"),
        "e-day3-early": (False, "daily 2026-11-27 keeps a newer one"),
        "f-day4": (True, "daily 2026-11-26"),
        "g-week-late": (True, "weekly 2026-W48"),
        "h-week-early": (False, "weekly 2026-W48 keeps a newer one"),
        "i-week47": (True, "weekly 2026-W47"),
        "j-month": (True, "monthly 2026-10"),
        "k-month-older": (False, "monthly 2026-10 keeps a newer one"),
        "l-year": (True, "yearly 2026"),
        "m-year-older": (False, "yearly 2026 keeps a newer one"),
        "n-ancient": (False, "beyond yearly 1 year"),
    }


def test_policy__beyond_names_the_last_rule_in_use():
    policy = RetentionPolicy(keep_all_days=1, daily_days=0, weekly_weeks=4, monthly_months=0, yearly_years=0)
    assert why(decide([item("old", 40)], now=NOW, policy=policy)) == {"old": (False, "beyond weekly 4 weeks")}


def test_policy__classes_are_counted_apart():
    """A flood of admin clicks on one day never takes the day's slot of a pre-migration backup."""
    policy = RetentionPolicy(keep_all_days=0, daily_days=5)
    items = [item(f"admin-{i}", 1 + i / 100, "admin") for i in range(5)] + [item("pre", 1.2, "pre_migrate")]
    decided = why(decide(items, now=NOW, policy=policy))
    assert decided["pre"] == (True, "daily 2026-11-28")
    assert decided["admin-0"] == (True, "daily 2026-11-28")
    assert [decided[f"admin-{i}"][0] for i in range(1, 5)] == [False] * 4


def test_policy__keep_counts_per_class():
    items = [item(f"m{i}", i, "manual") for i in range(3)] + [item("p0", 5, "pre_migrate")]
    assert why(decide(items, now=NOW, keep=2)) == {
        "m0": (True, "class manual, 1 of 2"),
        "m1": (True, "class manual, 2 of 2"),
        "m2": (False, "class manual, beyond the newest 2"),
        "p0": (True, "class pre_migrate, 1 of 2"),
    }


def test_policy__newest_verified_and_pins_are_never_deleted():
    policy = RetentionPolicy(keep_all_days=0, daily_days=0, weekly_weeks=0, monthly_months=0, yearly_years=0)
    items = [
        item("unverified", 1),
        item("verified", 2, verified=True),
        item("older-verified", 3, verified=True),
        item("pinned", 400, pinned=True),
        item("pin-active", 4, pinned_until=NOW + timedelta(days=3)),
        item("pin-expired", 10, pinned_until=NOW - timedelta(seconds=1)),
    ]
    assert why(decide(items, now=NOW, policy=policy)) == {
        "unverified": (False, "beyond every rule (all 0)"),
        "verified": (True, "newest verified"),
        "older-verified": (False, "beyond every rule (all 0)"),
        "pinned": (True, "pinned"),
        "pin-active": (True, "pinned until 2026-12-02 12:00 UTC"),
        "pin-expired": (False, "beyond every rule (all 0)"),
    }


def test_policy__size_cap_deletes_oldest_manual_and_admin_first_never_protected():
    policy = RetentionPolicy(keep_all_days=30, max_total_bytes=450)
    items = [
        item("newest-verified", 0, "scheduled", size=100, verified=True),
        item("manual-new", 1, "manual", size=100),
        item("pre-old", 20, "pre_migrate", size=100),
        item("admin-old", 10, "admin", size=100),
        item("manual-old", 5, "manual", size=100),
        item("pinned-oldest", 25, "manual", size=100, pinned=True),
    ]
    decided = why(decide(items, now=NOW, policy=policy))
    cap = "over the size cap (450 bytes), oldest first"
    # 600 bytes: two must go; admin-old (oldest manual/admin), then manual-old; pre-old stays.
    assert decided["admin-old"] == (False, cap)
    assert decided["manual-old"] == (False, cap)
    assert decided["pre-old"] == (True, "every backup for 30 days")
    assert decided["manual-new"][0]
    assert decided["pinned-oldest"] == (True, "pinned")
    assert decided["newest-verified"] == (True, "newest verified")


def test_policy__size_cap_never_deletes_protected_ones_even_when_still_over():
    policy = RetentionPolicy(max_total_bytes=10)
    items = [item("v", 0, size=100, verified=True), item("p", 1, size=100, pinned=True), item("x", 2, size=5)]
    assert why(decide(items, now=NOW, policy=policy)) == {
        "v": (True, "newest verified"),
        "p": (True, "pinned"),
        "x": (False, "over the size cap (10 bytes), oldest first"),
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ({"daily_days": 3}, RetentionPolicy(daily_days=3)),
        (
            "keep_all_days=1, daily_days=2,weekly_weeks=3,monthly_months=4,yearly_years=5,max_total_bytes=99",
            RetentionPolicy(1, 2, 3, 4, 5, 99),
        ),
        ("max_total_bytes=0", RetentionPolicy()),
    ],
)
def test_retention_policy__parses_a_dict_or_the_environment_form(value, expected):
    assert retention_policy(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"dayly_days": 3}, "unknown key(s) dayly_days; known: daily_days, keep_all_days,"),
        ("daily_days=x", "daily_days must be a whole number, not 'x'"),
        ("weekly_weeks", "'weekly_weeks' is not key=value"),
        ({"yearly_years": -1}, "yearly_years must not be negative"),
    ],
)
def test_retention_policy__bad_values_say_what_is_wrong(value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        retention_policy(value)


# --- the policy applied to the folder --------------------------------------------------------------


def set_age(name: str, days: float) -> None:
    manifest = next(m for m in list_backups(alias="default") if m.name == name)
    created = datetime.now(UTC) - timedelta(days=days)
    record(update_manifest(manifest, created=created.isoformat(timespec="microseconds")))


def test_cleanupbackups__dry_run_says_what_each_rule_keeps_and_why(backup_dir, settings):
    settings.SAFEMIGRATE_RETENTION = {
        "keep_all_days": 1,
        "daily_days": 3,
        "weekly_weeks": 4,
        "monthly_months": 0,
    }
    settings.SAFEMIGRATE_RETENTION["yearly_years"] = 0
    names = make_backups(5)
    ages = dict(zip(names, [60, 45, 10, 1.5, 0], strict=True))
    for name, days in ages.items():
        set_age(name, days)
    pinned = next(m for m in list_backups(alias="default") if m.name == names[1])
    update_manifest(pinned, pinned=True)
    day = datetime.now(UTC) - timedelta(days=1.5)
    year, week, _ = (datetime.now(UTC) - timedelta(days=10)).isocalendar()
    out = StringIO()
    call_command("cleanupbackups", dry_run=True, stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == (
        "Rules: SAFEMIGRATE_RETENTION per class: every backup for 1 day, one a day for 3 days, a week "
        "for 4 weeks, a month for 0 months, a year for 0 years"
    )
    assert lines[1:] == [
        f"keep    manual  {names[4]}  newest verified",
        f"keep    manual  {names[3]}  daily {day:%Y-%m-%d}",
        f"keep    manual  {names[2]}  weekly {year}-W{week:02d}",
        f"keep    manual  {names[1]}  pinned",
        f"delete  manual  {names[0]}  beyond weekly 4 weeks",
        "Would delete 1 backup(s); 4 kept.",
    ]
    out = StringIO()
    call_command("cleanupbackups", dry_run=True, format="json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["deleted"] == [names[0]]
    assert report["decisions"][-1] == {
        "name": names[0],
        "class": "manual",
        "keep": False,
        "why": "beyond weekly 4 weeks",
    }
    assert len(list_backups(alias="default")) == 5  # a dry run
    out = StringIO()
    call_command("cleanupbackups", stdout=out)
    assert f"Deleted {names[0]} (beyond weekly 4 weeks)" in out.getvalue()
    assert {m.name for m in list_backups(alias="default")} == set(names[1:])


def test_cleanupbackups__bad_retention_is_one_line(backup_dir, settings):
    make_backups(1)
    settings.SAFEMIGRATE_RETENTION = "daily_days=many"
    with pytest.raises(
        CommandError,
        match=r"^SAFEMIGRATE_RETENTION is not valid: daily_days must be a whole number, not 'many'; "
        r"nothing was deleted",
    ):
        call_command("cleanupbackups", stdout=StringIO())
    assert len(list_backups(alias="default")) == 1


def test_pre_migrate_backup__pinned_for_a_week_then_rotated(at_0001, settings):
    """The pre-migration backup outlives KEEP for SAFEMIGRATE_PIN_PRE_MIGRATE_DAYS, then goes."""
    call_command("migrate", "migrapp", stdout=StringIO())
    newer, older = [m for m in list_backups(alias="default") if m.reason == "pre_migrate"]  # two migrations
    for pre in (newer, older):
        assert pre.pinned_until is not None
        assert datetime.fromisoformat(pre.pinned_until) - pre.created_at == timedelta(days=7)
        assert not pre.pinned  # a time-limited pin is not the admin's pin
    out = StringIO()
    call_command("backups", stdout=out)
    assert f"pin until {older.pinned_until[:10]}" in out.getvalue()
    kept = rotate_backups(alias="default", keep=1)  # the older one is beyond KEEP in its class
    assert older.name in kept.kept
    assert {d.name: d.why for d in kept.decisions}[older.name].startswith(
        f"pinned until {older.pinned_until[:10]}"
    )
    later = datetime.now(UTC) + timedelta(days=8)
    assert rotate_backups(alias="default", keep=1, now=later).deleted == [older.name]
    assert not older.file_path.exists()


def test_pre_migrate_backup__pin_days_zero_turns_it_off(at_0001, settings):
    settings.SAFEMIGRATE_PIN_PRE_MIGRATE_DAYS = 0
    call_command("migrate", "migrapp", stdout=StringIO())
    newest = next(m for m in list_backups(alias="default") if m.reason == "pre_migrate")
    assert newest.pinned_until is None


def test_pin__signed_manifests_stay_trusted(at_0001, settings):
    """pinned_until joins the MAC only when set: manifests signed before it existed still pass."""
    settings.SAFEMIGRATE_ENCRYPTION_KEY = "a long enough passphrase for tests"
    call_command("migrate", "migrapp", stdout=StringIO())
    pre = next(m for m in list_backups(alias="default") if m.reason == "pre_migrate")
    assert pre.encryption
    assert pre.pinned_until is not None
    check_trusted(read_manifest(pre.path))  # re-signed with the pin
    plain = make_backups(1)[0]
    path = next(m.path for m in list_backups(alias="default") if m.name == plain)
    data = json.loads(path.read_text())
    for newer in ("pinned_until", "verification_failure"):
        data.pop(newer, None)  # as written, and signed, before the fields existed
    data["mac"] = mac_of({k: v for k, v in data.items() if k != "mac"}, settings.SAFEMIGRATE_ENCRYPTION_KEY)
    path.write_text(json.dumps(data))
    check_trusted(read_manifest(path))


def test_check__bad_retention_is_e008(settings, tmp_path):
    settings.SAFEMIGRATE_BACKUP_DIR = str(tmp_path / "b")
    settings.SAFEMIGRATE_RETENTION = {"daily_days": 3, "hourly_hours": 2}
    [error] = [m for m in checks.run_checks() if m.id == "safemigrate.E008"]
    assert error.msg.startswith("SAFEMIGRATE_RETENTION is not valid: unknown key(s) hourly_hours; known: ")
    settings.SAFEMIGRATE_RETENTION = {"daily_days": 3}
    assert "safemigrate.E008" not in {m.id for m in checks.run_checks()}


def test_admin__shows_the_time_limited_pin_and_unpin_ends_it(at_0001, admin_client):
    call_command("migrate", "migrapp", stdout=StringIO())
    pre = next(m for m in list_backups(alias="default") if m.reason == "pre_migrate")
    page = admin_client.get("/admin/safemigrate/backup/").content.decode()
    assert f'<span title="{pre.pinned_until}">until {pre.pinned_until[:10]}</span>' in page
    backup_id = Backup.objects.get(name=pre.name).pk
    admin_client.post(f"/admin/safemigrate/backup/{backup_id}/pin/", {"pinned": "0"})
    assert read_manifest(pre.path).pinned_until is None
