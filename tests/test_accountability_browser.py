"""In a real Chromium: the accountability dashboard draws its charts, light and dark.

Skipped without Chromium and chromedriver (see tests/test_admin_browser.py).
With ``DCA_SCREENSHOTS=DIR`` it saves the screenshots the README shows.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from django_cloudinary_analysis.models import (
    Analysis,
    Appeal,
    ModerationDecision,
    QuotaState,
)
from tests.models import OwnedPhoto
from tests.test_admin_browser import (
    WAIT,
    browsers,  # noqa: F401 (the fixture it needs)
)
from tests.test_admin_browser import browser as _browser  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.browser]

LIGHT_SERIES_1 = "rgb(47, 126, 191)"
DARK_SERIES_1 = "rgb(108, 182, 255)"
REASONS = [
    [{"rule": "question_yes", "type": "ai_vision_moderation", "question": "Gore?"}],
    [{"rule": "label", "type": "google_tagging", "label": "Weapon"}],
    [{"rule": "all_clear"}],
]


def _history() -> None:
    """Two weeks of decisions, some overturned, one appeal, calls and a quota."""
    ct = ContentType.objects.get_for_model(OwnedPhoto)
    now = timezone.now()
    for n in range(60):
        at = now - timedelta(days=n % 14, hours=1)
        status = ("rejected", "rejected", "approved", "review")[n % 4]
        auto = ModerationDecision.objects.create(
            content_type=ct,
            object_id=str(n),
            status=status,
            decided_by_kind="auto",
            reasons=REASONS[n % 3],
        )
        ModerationDecision.objects.filter(pk=auto.pk).update(decided_at=at)
        if n % 3 == 0:
            human = ModerationDecision.objects.create(
                content_type=ct,
                object_id=str(n),
                status="approved" if n % 2 else "rejected",
                decided_by_kind="human",
            )
            ModerationDecision.objects.filter(pk=human.pk).update(
                decided_at=at + timedelta(minutes=30)
            )
        if n % 10 == 1:
            Appeal.objects.create(
                decision=auto,
                content_type=ct,
                object_id=str(n),
                status=("open", "overturned", "upheld")[n % 3],
            )
        Analysis.objects.create(
            content_type=ct,
            object_id=str(n),
            analysis_type=("ai_vision_moderation", "google_tagging")[n % 2],
            params_hash="x",
            status="succeeded",
            attempts=1 + n % 2,
        )
    QuotaState.objects.create(feature="google_tagging", remaining=420, limit=500)


def _login(browser: Any, url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{url}/admin/login/?next=/admin/")
    browser.find_element(By.NAME, "username").send_keys("boss")
    browser.find_element(By.NAME, "password").send_keys("pw-1234")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, WAIT).until(
        ec.presence_of_element_located((By.ID, "user-tools"))
    )


def _charts(browser: Any) -> list[Any]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, WAIT).until(
        ec.presence_of_all_elements_located((By.CSS_SELECTOR, "svg.dca-chart"))
    )
    return browser.find_elements(By.CSS_SELECTOR, "svg.dca-chart")  # type: ignore[no-any-return]


def _first_bar_fill(browser: Any) -> str:
    return browser.execute_script(  # type: ignore[no-any-return]
        "return getComputedStyle(document.querySelector('rect.dca-bar')).fill"
    )


@pytest.mark.django_db(transaction=True)
def test_dashboard_charts_render(_browser: Any, live_server: Any) -> None:  # noqa: F811
    browser = _browser
    get_user_model().objects.create_superuser("boss", "b@example.com", "pw-1234")
    _history()
    _login(browser, live_server.url)
    browser.get(f"{live_server.url}/cloudinary-analysis/admin/dashboard/")
    charts = _charts(browser)
    assert len(charts) == 5
    for chart in charts:
        size = chart.size
        assert size["width"] > 300 and size["height"] > 20, chart.get_attribute(
            "aria-label"
        )
    bars = browser.execute_script(
        "return Array.from(document.querySelectorAll('svg.dca-chart')).map("
        "s => s.querySelectorAll('rect.dca-bar').length)"
    )
    assert all(n > 0 for n in bars), bars
    # The stylesheet loaded and its colours follow the theme.
    assert _first_bar_fill(browser) == LIGHT_SERIES_1
    shots = os.environ.get("DCA_SCREENSHOTS")
    if shots:
        browser.set_window_size(1280, 1900)
        browser.save_screenshot(str(Path(shots) / "accountability-dashboard.png"))
    browser.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
    )
    browser.refresh()
    _charts(browser)
    assert _first_bar_fill(browser) == DARK_SERIES_1
    if shots:
        browser.save_screenshot(str(Path(shots) / "accountability-dashboard-dark.png"))
