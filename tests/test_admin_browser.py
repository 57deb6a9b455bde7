"""End to end in a real Chromium: a reviewer rejects an item from the queue.

Needs Debian's ``chromium`` and ``chromium-driver`` packages (and the
``selenium`` test dependency). Without them the test is skipped, unless
``CLOUDINARY_ANALYSIS_REQUIRE_SERVICES=1``, where it fails instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from django_cloudinary_analysis.models import ModerationDecision, ModerationStatus
from tests.models import Photo, UUIDPhoto

pytestmark = [pytest.mark.integration, pytest.mark.browser]

# A local artefact to look at after a run; never committed.
SCREENSHOT = Path("/tmp/admin_queue.png")
QUESTION = "Does the image contain violence?"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1600,1000",
)
WAIT = 20  # seconds an element may take to appear, not an assertion on speed


def _missing(reason: str) -> None:
    message = (
        f"{reason}: install the Debian packages `chromium` and `chromium-driver` "
        "(and the `selenium` test dependency) to run the browser test"
    )
    if os.environ.get("CLOUDINARY_ANALYSIS_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _executable(env: str, *names: str) -> str | None:
    candidates = [os.environ.get(env, "")]
    for name in names:
        candidates.append(shutil.which(name) or "")
        candidates.append(f"/usr/bin/{name}")
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    return None


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A headless Chromium driven through chromedriver, with a fresh profile."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed")
    chromium = _executable("CHROMIUM_BINARY", "chromium", "chromium-browser")
    driver_path = _executable("CHROMEDRIVER", "chromedriver")
    if chromium is None or driver_path is None:
        _missing("Chromium or chromedriver was not found")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    # An explicit driver path keeps Selenium Manager (and its downloads) out.
    driver = webdriver.Chrome(
        service=Service(executable_path=driver_path), options=options
    )
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def served_media(settings: Any) -> None:
    """Serve uploads through the live server's static handler (thumbnails)."""
    settings.STATICFILES_DIRS = [("media", settings.MEDIA_ROOT)]
    settings.MEDIA_URL = settings.STATIC_URL + "media/"


@pytest.mark.django_db(transaction=True)
def test_reviewer_rejects_an_item_from_the_queue(
    browser: Any,
    live_server: Any,
    served_media: None,
    memory_backend: Any,
    image_file: Any,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    get_user_model().objects.create_superuser("reviewer", "r@example.com", "pw-1234")
    # Outside a test transaction the pipeline runs for real on commit: eager
    # Celery tasks, the memory backend, the default moderation policy.
    memory_backend.set_result(
        "ai_vision_moderation",
        {"responses": [{"prompt": QUESTION, "value": "unknown"}], "model_version": 1},
    )
    beach = Photo.objects.create(title="Beach party", image=image_file("beach.png", 1))
    UUIDPhoto.objects.create(image=image_file("other.png", 2))
    memory_backend.set_result(
        "ai_vision_moderation",
        {"responses": [{"prompt": QUESTION, "value": "no"}], "model_version": 1},
    )
    Photo.objects.create(title="Sunset", image=image_file("sunset.png", 3))
    beach.refresh_from_db()
    assert beach.moderation_status == ModerationStatus.REVIEW

    wait = WebDriverWait(browser, WAIT)
    browser.get(f"{live_server.url}/admin/login/?next=/admin/")
    browser.find_element(By.NAME, "username").send_keys("reviewer")
    browser.find_element(By.NAME, "password").send_keys("pw-1234")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.ID, "user-tools")))

    browser.get(f"{live_server.url}/admin/cloudinary_analysis/moderationdecision/")
    row_xpath = (
        "//tr[.//td[contains(@class, 'field-queue_object_display')]//a[text()='{}']]"
    )
    row = wait.until(
        ec.presence_of_element_located((By.XPATH, row_xpath.format("Beach party")))
    )
    badge = row.find_element(By.CSS_SELECTOR, ".field-verdict_display .dca-badge")
    assert badge.text.lower() == "needs review"
    assert "dca-badge--review" in badge.get_attribute("class")
    # Open items come first: the sunset photo was approved, so it sorts last.
    first = browser.find_element(By.CSS_SELECTOR, "#result_list tbody tr")
    assert "needs review" in first.text.lower()

    row.find_element(By.CSS_SELECTOR, "a.dca-review-button").click()
    note = wait.until(ec.presence_of_element_located((By.NAME, "note")))
    note.send_keys("Shows a weapon in the background.")
    browser.find_element(By.CSS_SELECTOR, "button[value=reject]").click()

    row = wait.until(
        ec.presence_of_element_located((By.XPATH, row_xpath.format("Beach party")))
    )
    badge = row.find_element(By.CSS_SELECTOR, ".field-verdict_display .dca-badge")
    assert badge.text.lower() == "rejected"
    assert "dca-badge--rejected" in badge.get_attribute("class")
    message = browser.find_element(By.CSS_SELECTOR, "ul.messagelist li.success")
    assert "Beach party is now rejected." in message.text
    thumbnail = row.find_element(By.CSS_SELECTOR, "img.dca-thumb")
    wait.until(  # lazy images load once laid out
        lambda d: d.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth > 0", thumbnail
        )
    )
    browser.save_screenshot(str(SCREENSHOT))

    decision = ModerationDecision.objects.for_object(beach).first()
    assert decision.status == ModerationStatus.REJECTED
    assert decision.note == "Shows a weapon in the background."
    assert decision.decided_by.username == "reviewer"
    beach.refresh_from_db()
    assert beach.moderation_status == ModerationStatus.REJECTED
