"""A reused result shows nothing of the donor's owner (issue 12, point 3)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db.models import QuerySet

from django_cloudinary_analysis.models import Analysis
from tests.models import Photo
from tests.support.images import png_bytes
from tests.test_rest_framework import (
    _user,
    client_for,
    own_photos,
    with_app_settings,
)

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.urls_api")]

API = "/api/analysis"
TYPE = "google_tagging"


def own_unless_superuser(request: Any, queryset: QuerySet[Any]) -> QuerySet[Any]:
    """A site rule: superusers see everything, others their own photos."""
    if request.user.is_superuser:
        return queryset
    return own_photos(request, queryset)


@pytest.fixture
def twins(django_capture_on_commit_callbacks: Any) -> tuple[Analysis, Analysis]:
    """Bob's photo is analysed; Alice uploads the same bytes and reuses it."""
    from django.core.files.base import ContentFile

    made = []
    for title, name in (
        ("bob: original", "bob-secret-name.png"),
        ("alice: copy", "a.png"),
    ):
        with django_capture_on_commit_callbacks(execute=True):
            photo = Photo.objects.create(
                title=title, image=ContentFile(png_bytes(77), name=name)
            )
        made.append(Analysis.objects.get(object_id=str(photo.pk), analysis_type=TYPE))
    donor, reused = made
    assert reused.reused_from_id == donor.pk  # the dedup did happen
    return donor, reused


def test_reused_result_carries_its_own_entity(twins: tuple[Analysis, Analysis]) -> None:
    donor, reused = twins

    assert donor.raw["data"]["entity"] == donor.file_name
    assert reused.raw == {
        "data": {"entity": reused.file_name, "analysis": donor.raw["data"]["analysis"]}
    }
    assert reused.result == donor.result


def test_an_owner_sees_no_donor_id_file_or_request(
    settings: Any, twins: tuple[Analysis, Analysis]
) -> None:
    donor, reused = twins
    with_app_settings(
        settings, API_OBJECT_FILTER="tests.test_rest_framework.own_photos"
    )
    alice = client_for(_user("alice"))

    listed = alice.get(f"{API}/analyses/").json()["results"]
    detail = alice.get(f"{API}/analyses/{reused.pk}/").json()

    row = next(a for a in listed if a["id"] == reused.pk)
    assert row["reused_from"] is None
    assert detail["reused_from"] is None
    assert detail["request_id"] == ""
    assert detail["raw"]["data"]["entity"] == reused.file_name
    text = json.dumps([listed, detail])
    assert donor.file_name not in text
    assert "bob-secret-name" not in text
    assert f'"reused_from": {donor.pk}' not in text
    # Alice cannot see Bob's analysis at all.
    assert alice.get(f"{API}/analyses/{donor.pk}/").status_code == 404


def test_old_rows_holding_the_donors_raw_are_shown_with_their_own_entity(
    settings: Any, twins: tuple[Analysis, Analysis]
) -> None:
    donor, reused = twins
    Analysis.objects.filter(pk=reused.pk).update(raw=donor.raw)  # before the fix
    with_app_settings(
        settings, API_OBJECT_FILTER="tests.test_rest_framework.own_photos"
    )

    detail = client_for(_user("alice")).get(f"{API}/analyses/{reused.pk}/").json()

    assert detail["raw"]["data"]["entity"] == reused.file_name


def test_superusers_and_unfiltered_staff_keep_the_link(
    settings: Any, twins: tuple[Analysis, Analysis]
) -> None:
    donor, reused = twins
    staff = client_for(_user("staffer"))
    response = staff.get(f"{API}/analyses/{reused.pk}/")
    assert response.json()["reused_from"] == donor.pk, response.json()

    with_app_settings(settings, API_OBJECT_FILTER=f"{__name__}.own_unless_superuser")
    root = User.objects.create_superuser("root", password="pw")
    detail = client_for(root).get(f"{API}/analyses/{reused.pk}/").json()
    assert detail["reused_from"] == donor.pk
    assert detail["raw"]["data"]["entity"] == reused.file_name
