"""End to end in a real Chromium: a reviewer rejects an item from the queue.

Needs Debian's ``chromium`` and ``chromium-driver`` packages (and the
``selenium`` test dependency). Without them the test is skipped, unless
``CLOUDINARY_ANALYSIS_REQUIRE_SERVICES=1``, where it fails instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
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
def browsers(tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """Start headless Chromiums (fresh profiles) on demand; quit them all."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed")
    chromium = _executable("CHROMIUM_BINARY", "chromium", "chromium-browser")
    driver_path = _executable("CHROMEDRIVER", "chromedriver")
    if chromium is None or driver_path is None:
        _missing("Chromium or chromedriver was not found")
    started: list[Any] = []

    def start() -> Any:
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in FLAGS:
            options.add_argument(flag)
        profile = tmp_path / f"chromium-profile-{len(started)}"
        options.add_argument(f"--user-data-dir={profile}")
        # An explicit driver path keeps Selenium Manager (and its downloads) out.
        driver = webdriver.Chrome(
            service=Service(executable_path=driver_path), options=options
        )
        started.append(driver)
        return driver

    try:
        yield start
    finally:
        for driver in started:
            driver.quit()


@pytest.fixture
def browser(browsers: Callable[[], Any]) -> Any:
    """One headless Chromium."""
    return browsers()


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


# -- the review workspace -------------------------------------------------------

WORKSPACE = "/admin/cloudinary_analysis/moderationdecision/workspace/"
#: Where the README's screenshot is written when asked for (see the README).
README_SCREENSHOT = Path(__file__).parent.parent / "docs/images/review-workspace.png"


def log_in(browser: Any, live_server: Any, username: str, *perms: str) -> None:
    """Create a staff user (superuser without ``perms``) and log in."""
    from django.contrib.auth.models import Permission
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    users = get_user_model().objects
    if perms:
        user = users.create_user(username, password="pw-1234", is_staff=True)
        for perm in perms:
            app_label, codename = perm.split(".")
            user.user_permissions.add(
                Permission.objects.get(
                    content_type__app_label=app_label, codename=codename
                )
            )
    else:
        users.create_superuser(username, f"{username}@example.com", "pw-1234")
    browser.get(f"{live_server.url}/admin/login/?next=/admin/")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys("pw-1234")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, WAIT).until(
        ec.presence_of_element_located((By.ID, "user-tools"))
    )


def open_workspace(browser: Any, live_server: Any) -> list[str]:
    """Open the workspace; return the keys of the items it shows."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(live_server.url + WORKSPACE)
    WebDriverWait(browser, WAIT).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )
    return [
        e.get_attribute("data-key")
        for e in browser.find_elements(By.CSS_SELECTOR, ".dca-item")
    ]


def press(browser: Any, *keys: str) -> None:
    """Type keys into the page (wherever the focus is)."""
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).send_keys(*keys).perform()


def scene_file(name: str) -> Any:
    """A 480x320 PNG that looks like a landscape (for the README's screenshot)."""
    from django.core.files.base import ContentFile
    from PIL import Image, ImageDraw

    from tests.support.images import encode_png

    img = Image.new("RGB", (480, 320))
    draw = ImageDraw.Draw(img)
    for y in range(320):  # a sky fading into the horizon
        draw.line([(0, y), (480, y)], fill=(70 + y // 4, 130 + y // 5, 200))
    draw.ellipse([340, 40, 410, 110], fill=(255, 214, 90))
    draw.polygon(
        [(0, 320), (0, 220), (150, 160), (300, 230), (480, 180), (480, 320)],
        fill=(46, 125, 50),
    )
    return ContentFile(encode_png(img), name=name)


def click_on(browser: Any, element: Any) -> None:
    """Click where ``element`` is on screen, as a user would (on its overlay)."""
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).move_to_element(element).click().perform()


def humans() -> int:
    return ModerationDecision.objects.filter(decided_by_kind="human").count()


def review_items(memory_backend: Any, image_file: Any, n: int) -> list[Photo]:
    """``n`` photos that need review, through the real pipeline."""
    memory_backend.set_result(
        "ai_vision_moderation",
        {"responses": [{"prompt": QUESTION, "value": "unknown"}], "model_version": 1},
    )
    return [
        Photo.objects.create(title=f"Photo {i}", image=image_file(f"p{i}.png", i + 1))
        for i in range(n)
    ]


@pytest.mark.django_db(transaction=True)
def test_reviewer_clears_a_queue_of_20_with_the_keyboard_only(
    browser: Any, live_server: Any, memory_backend: Any, image_file: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    photos = review_items(memory_backend, image_file, 20)
    log_in(browser, live_server, "reviewer")
    first_batch = open_workspace(browser, live_server)
    assert len(first_batch) == 10  # one batch of claims; the rest comes next
    wait = WebDriverWait(browser, WAIT)

    def current_key() -> str | None:
        return browser.execute_script(  # type: ignore[no-any-return]
            "const c = document.querySelector('.dca-item.dca-current');"
            "return c && !c.classList.contains('dca-decided') ? c.dataset.key : null"
        )

    # J and K move between items.
    start = current_key()
    press(browser, "j")
    assert current_key() != start
    press(browser, "k")
    assert current_key() == start

    def decided() -> set[str]:
        return {
            f"{ct}:{oid}"
            for ct, oid in ModerationDecision.objects.filter(
                decided_by_kind="human"
            ).values_list("content_type_id", "object_id")
        }

    for done in range(20):
        # The next open item is on screen (the script moved on, or the page
        # reloaded with the next claims).
        wait.until(lambda d: current_key() not in (None, *decided()))
        if done == 1:  # R: the note takes focus, Enter rejects
            press(browser, "r")
            active = browser.switch_to.active_element
            assert active.get_attribute("name") == "note"
            press(browser, "Too dark to tell.", Keys.ENTER)
        else:
            press(browser, "a")
        wait.until(lambda d, done=done: humans() == done + 1)
    wait.until(
        lambda d: (
            d.find_elements(By.CSS_SELECTOR, ".dca-empty")
            and not d.find_elements(By.CSS_SELECTOR, ".dca-item")
        )
    )
    statuses = [
        p.moderation_status for p in Photo.objects.filter(pk__in=[p.pk for p in photos])
    ]
    assert statuses.count(ModerationStatus.APPROVED) == 19
    assert statuses.count(ModerationStatus.REJECTED) == 1
    rejected = ModerationDecision.objects.get(
        decided_by_kind="human", status="rejected"
    )
    assert rejected.note == "Too dark to tell."


@pytest.mark.django_db(transaction=True)
def test_undo_restores_the_previous_decision_and_previews_are_blurred(
    browser: Any,
    live_server: Any,
    served_media: None,
    memory_backend: Any,
    image_file: Any,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    memory_backend.set_result(
        "ai_vision_moderation",
        {"responses": [{"prompt": QUESTION, "value": "unknown"}], "model_version": 1},
    )
    photo = Photo.objects.create(title="Hills at noon", image=scene_file("hills.png"))
    log_in(browser, live_server, "reviewer")
    open_workspace(browser, live_server)
    wait = WebDriverWait(browser, WAIT)
    image = browser.find_element(By.CSS_SELECTOR, ".dca-item.dca-current img")
    wait.until(
        lambda d: d.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth > 0", image
        )
    )

    def image_filter() -> str:
        return browser.execute_script(  # type: ignore[no-any-return]
            "return getComputedStyle(arguments[0]).filter", image
        )

    assert "blur" in image_filter()  # needs review: blurred by default
    press(browser, "v")
    assert image_filter() == "none"
    if os.environ.get("CLOUDINARY_ANALYSIS_SCREENSHOTS") == "1":
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(README_SCREENSHOT))
    press(browser, "v")
    assert "blur" in image_filter()
    click_on(browser, image)  # a click reveals too
    assert image_filter() == "none"

    press(browser, "a")
    wait.until(lambda d: humans() == 1)
    # The page has taken the answer (it remembers the decision for undo).
    wait.until(
        lambda d: d.execute_script(
            "return window.sessionStorage.getItem('dca-workspace-last')"
        )
    )
    photo.refresh_from_db()
    assert photo.moderation_status == ModerationStatus.APPROVED
    press(browser, "u")
    wait.until(
        lambda d: (
            Photo.objects.get(pk=photo.pk).moderation_status == ModerationStatus.REVIEW
        )
    )
    # The queue had emptied (the page moved on); undo brings the item back.
    wait.until(
        lambda d: d.find_elements(
            By.CSS_SELECTOR, ".dca-item.dca-current:not(.dca-decided)"
        )
    )
    history = list(ModerationDecision.objects.for_object(photo)[:3])
    assert [d.status for d in history] == ["review", "approved", "review"]

    # Changelists blur sensitive thumbnails too, until clicked.
    browser.get(f"{live_server.url}/admin/cloudinary_analysis/moderationdecision/")
    thumb = browser.find_element(By.CSS_SELECTOR, ".dca-sensitive img.dca-thumb")
    assert "blur" in browser.execute_script(
        "return getComputedStyle(arguments[0]).filter", thumb
    )
    click_on(browser, thumb)
    assert (
        browser.execute_script("return getComputedStyle(arguments[0]).filter", thumb)
        == "none"
    )


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_in_two_browsers_never_get_the_same_item(
    browsers: Any, live_server: Any, memory_backend: Any, image_file: Any
) -> None:
    review_items(memory_backend, image_file, 15)
    first, second = browsers(), browsers()
    log_in(first, live_server, "alice")
    log_in(second, live_server, "bob")
    alices = open_workspace(first, live_server)
    bobs = open_workspace(second, live_server)
    assert len(alices) == 10 and len(bobs) == 5
    assert not set(alices) & set(bobs)
    # Reloading keeps each reviewer's own items.
    assert open_workspace(first, live_server) == alices
    assert open_workspace(second, live_server) == bobs
    # The queue shows who holds what.
    holders = first.execute_script(
        "return Array.from(document.querySelectorAll('.dca-holder'))"
        ".map(e => e.textContent.trim())"
    )
    assert sorted(set(holders)) == ["alice", "bob"]


@pytest.mark.django_db(transaction=True)
def test_a_user_without_review_media_sees_no_decision_controls(
    browser: Any, live_server: Any, memory_backend: Any, image_file: Any
) -> None:
    from selenium.webdriver.common.by import By

    (photo,) = review_items(memory_backend, image_file, 1)
    log_in(
        browser,
        live_server,
        "viewer",
        "cloudinary_analysis.view_moderationdecision",
    )
    assert open_workspace(browser, live_server)  # the item is shown
    assert browser.find_elements(By.CSS_SELECTOR, ".dca-decide") == []
    assert browser.find_elements(By.ID, "dca-bulk") == []
    assert browser.find_elements(By.CSS_SELECTOR, "button[value=approve]") == []
    press(browser, "a")
    photo.refresh_from_db()
    assert photo.moderation_status == ModerationStatus.REVIEW
    assert humans() == 0

    # The admin's dark theme reaches the workspace (its colours are the
    # admin's own variables).
    def item_colours() -> tuple[str, str]:
        return tuple(  # type: ignore[return-value]
            browser.execute_script(
                "const s = getComputedStyle(document.querySelector('.dca-item'));"
                "return [s.backgroundColor, s.color]"
            )
        )

    light = item_colours()
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
    )
    open_workspace(browser, live_server)
    dark = item_colours()
    assert light[0] == "rgb(255, 255, 255)" and dark[0] != light[0]
    assert dark[1] != light[1]
