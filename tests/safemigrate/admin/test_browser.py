"""End to end in headless Chromium: log in, Back up now, change data, Restore, see the data back.

Debian's /usr/bin/chromium driven by Playwright for Python (never `playwright install`); skips
with a reason when either is missing, and fails instead under SAFEMIGRATE_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def page(monkeypatch):
    """A Playwright page in Debian's headless Chromium."""
    if not CHROMIUM.is_file():
        skip_or_fail(f"{CHROMIUM} is missing: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("Playwright for Python is missing: pip install 'playwright>=1.45,<2'")
    # Playwright's sync API keeps an event loop in this thread; the ORM calls here are sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=LAPTOP)
            page = context.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


@pytest.mark.django_db(transaction=True)
def test_admin_restore__whole_flow_in_a_real_browser(page, live_server, backup_dir, django_user_model):
    from fitnessdb.tracker.models import Exercise

    django_user_model.objects.create_superuser("admin", "admin@example.com", "correct-horse")
    Exercise.objects.create(name="Goblet squat", muscle_group="quadriceps", equipment="kettlebell")
    backups = f"{live_server.url}/admin/safemigrate/backup/"

    # Log in.
    page.goto(backups)
    page.fill("#id_username", "admin")
    page.fill("#id_password", "correct-horse")
    page.click("input[type=submit]")
    page.wait_for_url(backups)

    # Back up now.
    page.click("#safemigrate-backup-now")
    page.wait_for_url(backups)
    success = page.locator("ul.messagelist li.success").inner_text()
    assert re.match(r"Backed up database 'default' to backup-admin-\S+ \(", success), success
    [made] = backup_dir.glob("backup-admin-*.zst")

    # Change the data.
    Exercise.objects.filter(name="Goblet squat").delete()
    Exercise.objects.create(name="Zercher squat", muscle_group="quadriceps", equipment="barbell")

    # Open the backup, then Restore: the confirmation page shows what will change.
    page.click("#result_list tbody tr:first-child th a")
    page.click("#safemigrate-restore")
    assert page.locator("h1").inner_text() == f"Restore {made.name}?"
    assert "A safety backup of the current database is taken first" in page.content()
    assert page.locator("#safemigrate-same-migrations").is_visible()
    row = page.locator('#safemigrate-row-counts tr[data-table="tracker_exercise"] td')
    assert row.all_inner_texts() == ["tracker_exercise", "1", "1"]  # one row replaced by another
    # The catalogue is rebuilt from the folder, not "lost": it is not listed as rows that go away.
    assert page.locator('#safemigrate-row-counts tr[data-table="safemigrate_backup"]').count() == 0
    assert "safemigrate_backup" in page.locator("#safemigrate-rebuilt").inner_text()

    # Confirm: the data is back and the user is still logged in (their own login is kept).
    page.click("#safemigrate-confirm-restore")
    page.wait_for_url(backups)
    message = page.locator("ul.messagelist li.success").inner_text()
    assert message.startswith(f"Restored {made.name} ("), message
    assert list(Exercise.objects.values_list("name", flat=True)) == ["Goblet squat"]
    page.goto(f"{live_server.url}/admin/tracker/exercise/")
    assert page.locator("#result_list").inner_text().count("Goblet squat") == 1
    assert "Zercher squat" not in page.content()


LAPTOP = {"width": 1366, "height": 768}
DAMAGED = "backup is damaged or truncated (zstd decompressor error: Data corruption detected)"
"""A common laptop width: every admin page fits it without scrolling sideways (issue #15)."""


SCROLLED_BOXES = """
[...document.querySelectorAll("body *")]
  .filter(e => e.offsetParent !== null && ["auto", "scroll", "hidden"].includes(getComputedStyle(e).overflowX)
               && e.clientWidth > 1 && e.scrollWidth > e.clientWidth + 1)
  .map(e => `${e.tagName.toLowerCase()}#${e.id}.${e.className}: ${e.scrollWidth} > ${e.clientWidth}`)
"""


def assert_fits(page, what: str, screenshot_dir: Path | None = None) -> None:
    """No horizontal overflow: the page is no wider than the window."""
    width = page.evaluate("document.documentElement.scrollWidth")
    inner = page.evaluate("window.innerWidth")
    if screenshot_dir is not None:
        page.screenshot(path=str(screenshot_dir / f"{what}.png"))
    assert width <= inner, f"{what} is {width}px wide in a {inner}px window"
    # The admin puts the list in a box that scrolls sideways itself: nothing may overflow there either.
    scrolled = page.evaluate(SCROLLED_BOXES)
    assert scrolled == [], f"{what}: these boxes scroll sideways: {scrolled}"


def assert_in_window(locator, what: str) -> None:
    """The element is shown and its right edge is inside the 1366px window (not cut off)."""
    assert locator.is_visible(), what
    box = locator.bounding_box()
    assert box is not None, what
    assert box["x"] + box["width"] <= LAPTOP["width"], f"{what} ends at {box['x'] + box['width']}px"


def realistic_catalogue(backup_dir: Path) -> None:
    """Long names, failed verifications, missing files, pins, long errors, many tables and apps."""
    from datetime import timedelta

    from django.utils import timezone

    from safemigrate.models import Backup, MigrationRun

    now = timezone.now()  # naive under USE_TZ = False
    migrations = {
        f"an_app_with_a_long_label_{i}": [f"00{i}2_rename_the_measurement_unit_field"] for i in range(6)
    }
    reason = "nightly_before_the_big_program_refactor_x"[:40]
    for i in range(30):
        stamp = (now - timedelta(hours=i)).strftime("%Y%m%dT%H%M%SZ")
        name = f"backup-{reason}-{stamp}-default.sqlite3.zst"
        path = backup_dir / name
        if i % 5 != 3:  # every fifth is missing on disk
            path.write_bytes(b"x" * 1000 * (i + 1))
        Backup.objects.create(
            name=name,
            path=str(path),
            created=now - timedelta(hours=i),
            reason=reason,
            vendor="sqlite",
            size=1_234_567_890 + i,
            sha256="ab" * 32,
            compression="zstd",
            encrypted=i % 2 == 0,
            verified=i % 3 == 0,
            verified_at=now if i % 3 == 0 else None,
            verification_failed_at=now if i % 3 == 1 else None,
            verification_error=DAMAGED if i % 3 == 1 else "",
            pinned=i % 4 == 0,
            migrations=migrations,
        )
    long_error = (
        "tracker.0042_split_the_workout_set_weight_into_value_and_unit: django.db.utils.IntegrityError: "
        "NOT NULL constraint failed: tracker_workoutset.weight_unit_with_a_very_long_column_name; "
        + "the whole plan was rolled back by the database transaction and nothing was written. "
        * 5
    )
    for i in range(20):
        MigrationRun.objects.create(
            started=now - timedelta(minutes=i),
            finished=now - timedelta(minutes=i) + timedelta(seconds=3),
            duration=3.3304451730000437 + i,
            status="rolled_back" if i % 2 else "applied",
            rollback="transaction",
            plan=[
                f"tracker.00{40 + j}_a_migration_with_a_long_descriptive_name_number_{j}" for j in range(8)
            ],
            backup_name=f"backup-{reason}-20261129T120000Z-default.sqlite3.zst",
            error=long_error if i % 2 else "",
        )


@pytest.mark.django_db(transaction=True)
def test_admin_pages__fit_a_1366px_window(
    page, live_server, backup_dir, django_user_model, tmp_path, make_backup
):
    """Backups list, Migration runs list and the restore confirmation: no horizontal scrolling
    at 1366x768, with MISSING, PINNED and a failed verification visible, and no cut-off column."""
    from fitnessdb.tracker.models import Exercise

    page.set_viewport_size(LAPTOP)
    django_user_model.objects.create_superuser("admin", "admin@example.com", "correct-horse")
    for i in range(40):
        Exercise.objects.create(
            name=f"Exercise {i} " + "with a long name " * 3, muscle_group="quadriceps", equipment="barbell"
        )
    restorable = make_backup("before_the_program_refactor_and_the_unit_change")
    backup_dir.mkdir(parents=True, exist_ok=True)
    realistic_catalogue(backup_dir)
    shots = Path(os.environ["SAFEMIGRATE_SCREENSHOTS"]) if os.environ.get("SAFEMIGRATE_SCREENSHOTS") else None
    admin = f"{live_server.url}/admin/safemigrate"

    page.goto(f"{admin}/backup/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "correct-horse")
    page.click("input[type=submit]")
    page.wait_for_url(f"{admin}/backup/")
    assert_fits(page, "backups", shots)
    for flag in ("MISSING", "FAILED"):
        assert_in_window(page.locator(f"#result_list td:has-text('{flag}')").first, flag)
    for column in ("on disk", "pinned", "verified"):
        assert_in_window(page.locator(f"#result_list thead th:has-text('{column}')").first, column)

    page.goto(f"{admin}/migrationrun/")
    assert_fits(page, "migration-runs", shots)
    for column in ("backup used", "error"):
        assert_in_window(page.locator(f"#result_list thead th:has-text('{column}')").first, column)

    page.goto(f"{admin}/backup/{restorable.pk}/restore/")
    assert_fits(page, "restore-confirmation", shots)
    assert_in_window(page.locator("#safemigrate-migrations thead th:has-text('now')"), "NOW")

    # The same backup damaged and verified: its page says FAILED with the reason, and Restore
    # warns on a page of its own before the confirmation page.
    data = bytearray(Path(restorable.path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(restorable.path).write_bytes(bytes(data))
    page.goto(f"{admin}/backup/{restorable.pk}/change/")
    page.click("#safemigrate-verify")
    page.wait_for_url(f"{admin}/backup/{restorable.pk}/change/")
    assert "is damaged" in page.locator(".field-verification_failure_display").inner_text()
    assert_fits(page, "failed-backup", shots)
    page.click("#safemigrate-restore")
    assert page.locator("#safemigrate-failed-warning").is_visible()
    assert page.locator("#safemigrate-confirm-restore").count() == 0
    assert_fits(page, "failed-warning", shots)
    page.click("#safemigrate-restore-anyway")
    assert page.locator("#safemigrate-confirm-restore").is_visible()
