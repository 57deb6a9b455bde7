"""In a real Chromium: an editor's save through the admin form keeps a verdict.

A reviewer rejects the photo while the editor's change form is being saved
(between the admin loading the row and writing it); the editor's save must
not write the old verdict back. Needs Chromium like ``test_admin_browser``.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db.models.signals import pre_save

from django_cloudinary_analysis import services
from django_cloudinary_analysis.models import ModerationDecision, ModerationStatus
from tests.models import Photo
from tests.test_admin_browser import WAIT, browser, browsers  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.mark.django_db(transaction=True)
def test_an_admin_form_save_keeps_a_rejection_made_meanwhile(
    browser: Any,  # noqa: F811
    live_server: Any,
    memory_backend: Any,
    image_file: Any,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    editor = get_user_model().objects.create_superuser("editor", "e@x.org", "pw-1")
    reviewer = get_user_model().objects.create_superuser("rita", "r@x.org", "pw-2")
    # Outside a test transaction the pipeline runs on commit: approved.
    photo = Photo.objects.create(title="Beach", image=image_file("beach.png", 1))
    photo.refresh_from_db()
    assert photo.moderation_status == ModerationStatus.APPROVED

    wait = WebDriverWait(browser, WAIT)
    browser.get(f"{live_server.url}/admin/login/?next=/admin/")
    browser.find_element(By.NAME, "username").send_keys(editor.username)
    browser.find_element(By.NAME, "password").send_keys("pw-1")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.ID, "user-tools")))
    browser.get(f"{live_server.url}/admin/tests/photo/{photo.pk}/change/")
    title = wait.until(ec.presence_of_element_located((By.NAME, "title")))
    title.clear()
    title.send_keys("Beach at night")

    def reviewer_rejects_meanwhile(sender: Any, instance: Any, **kw: Any) -> None:
        if instance.pk == photo.pk and instance.title == "Beach at night":
            pre_save.disconnect(reviewer_rejects_meanwhile, sender=Photo)
            services.reject(Photo.objects.get(pk=photo.pk), reviewer, "no")

    pre_save.connect(reviewer_rejects_meanwhile, sender=Photo)
    try:
        browser.find_element(By.NAME, "_save").click()
        wait.until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "ul.messagelist li"))
        )
    finally:
        pre_save.disconnect(reviewer_rejects_meanwhile, sender=Photo)

    photo.refresh_from_db()
    assert photo.title == "Beach at night"
    newest = ModerationDecision.objects.for_object(photo).first()
    assert newest.status == ModerationStatus.REJECTED
    assert newest.decided_by == reviewer
    assert photo.moderation_status == ModerationStatus.REJECTED
