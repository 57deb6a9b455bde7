"""The read-only inlines on a site's change pages (admin/inlines.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from django_cloudinary_analysis.models import (
    Analysis,
    MediaTag,
    ModerationDecision,
)
from tests.models import Photo, SlugPhoto, UUIDPhoto
from tests.support.admin import (
    FormInputs,
    change_url,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("model", "extra"),
    [(Photo, {"title": "int key"}), (UUIDPhoto, {}), (SlugPhoto, {"slug": "str-key"})],
)
def test_change_page_inlines_for_each_key_type(
    admin_client: Client, uploaded: Any, model: type, extra: dict[str, Any]
) -> None:
    obj = uploaded(model, "review", **extra)
    other = uploaded(
        model, "approved", **({"slug": "other"} if model is SlugPhoto else {})
    )
    response = admin_client.get(change_url(obj))
    assert response.status_code == 200
    inlines = {
        fs.formset.model: list(fs.formset.queryset)
        for fs in response.context["inline_admin_formsets"]
    }
    assert {a.pk for a in inlines[Analysis]} == {
        a.pk for a in Analysis.objects.for_object(obj)
    }
    assert inlines[Analysis]  # the object's own analyses, not the other's
    assert all(a.object_id == str(obj.pk) for a in inlines[Analysis])
    assert [t.label for t in inlines[MediaTag]] == ["photograph"]
    assert [d.status for d in inlines[ModerationDecision]] == ["review"]
    assert str(other.pk) != str(obj.pk)
    content = response.content.decode()
    assert "google_tagging" in content
    assert '<span class="dca-badge dca-badge--review">needs review</span>' in content
    assert "unsure: Does the image contain violence? (image)" in content
    # The read-only inlines offer nothing to add, change or delete.
    for fs in response.context["inline_admin_formsets"]:
        if fs.formset.model in (Analysis, MediaTag, ModerationDecision):
            assert not fs.has_add_permission
            assert not fs.has_change_permission
            assert not fs.has_delete_permission


def test_change_form_still_saves_with_the_inlines(
    admin_client: Client, uploaded: Any
) -> None:
    photo = uploaded(Photo, "review", title="old title")
    page = admin_client.get(change_url(photo))
    parser = FormInputs()
    parser.feed(page.content.decode())
    data = parser.data
    assert "cloudinary_analysis-analysis-content_type-object_id-TOTAL_FORMS" in data
    data["title"] = ["new title"]
    data["_save"] = ["Save"]
    response = admin_client.post(change_url(photo), data)
    assert response.status_code == 302, response.context and [
        fs.formset.errors for fs in response.context["inline_admin_formsets"]
    ]
    photo.refresh_from_db()
    assert photo.title == "new title"
    assert Analysis.objects.for_object(photo).count() == 3  # untouched
    assert MediaTag.objects.for_object(photo).count() == 1


def test_add_page_has_no_inlines(admin_client: Client) -> None:
    response = admin_client.get(reverse("admin:tests_photo_add"))
    assert response.status_code == 200
    assert response.context["inline_admin_formsets"] == []
