"""End to end in headless Chromium: log in, Back up now, change data, Restore, see the data back.

Debian's /usr/bin/chromium driven by Playwright for Python (never `playwright install`); skips
with a reason when either is missing, and fails instead under SAFEMIGRATE_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

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
            context = browser.new_context()
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
    catalogue = page.locator('#safemigrate-row-counts tr[data-table="safemigrate_backup"] td')
    assert catalogue.all_inner_texts() == ["safemigrate_backup", "1", "0"]  # listed after the copy

    # Confirm: the data is back and the user is still logged in (their own login is kept).
    page.click("#safemigrate-confirm-restore")
    page.wait_for_url(backups)
    message = page.locator("ul.messagelist li.success").inner_text()
    assert message.startswith(f"Restored {made.name} ("), message
    assert list(Exercise.objects.values_list("name", flat=True)) == ["Goblet squat"]
    page.goto(f"{live_server.url}/admin/tracker/exercise/")
    assert page.locator("#result_list").inner_text().count("Goblet squat") == 1
    assert "Zercher squat" not in page.content()
