"""The API's bounded JSON parser: deep, huge or odd bodies are a 4xx, never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from django_cloudinary_analysis.models import Analysis, ModerationDecision
from django_cloudinary_analysis.rest_framework.parsers import BoundedJSONParser
from tests.models import Photo

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.urls_api")]

API = "/api/analysis"
NESTED = b"[" * 50_000 + b"]" * 50_000


@pytest.fixture
def photo(image_file: Any) -> Photo:
    return Photo.objects.create(image=image_file())


def write_urls(photo: Photo) -> list[str]:
    analysis = Analysis.objects.filter(object_id=str(photo.pk)).first()
    assert analysis is not None
    return [
        f"{API}/analyses/{analysis.pk}/reanalyze/",
        f"{API}/objects/tests.photo/{photo.pk}/reanalyze/",
        f"{API}/moderation/tests.photo/{photo.pk}/approve/",
        f"{API}/moderation/tests.photo/{photo.pk}/reject/",
    ]


def signed_in(*perms: str, staff: bool = True, csrf: bool = False) -> Client:
    user = User.objects.create_user(f"u{User.objects.count()}", is_staff=staff)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client(enforce_csrf_checks=csrf, raise_request_exception=False)
    client.force_login(user)
    # A visitor has a CSRF cookie; the attack sends no matching token.
    client.cookies["csrftoken"] = "a" * 32
    return client


def state() -> tuple[int, int, list[Any]]:
    return (
        Analysis.objects.count(),
        ModerationDecision.objects.count(),
        list(Photo.objects.values_list("pk", "moderation_status")),
    )


@pytest.mark.parametrize("staff", [True, False], ids=["staff", "not-staff"])
def test_nested_body_without_permission_or_csrf_token_is_400(
    photo: Photo, staff: bool
) -> None:
    # DRF's CSRF check parses the body before any permission is checked.
    client = signed_in(staff=staff, csrf=True)
    before = state()

    codes = [
        client.post(url, NESTED, content_type="application/json").status_code
        for url in write_urls(photo)
    ]

    assert codes == [400] * 4
    assert state() == before


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (NESTED, 400),
        (b'{"force": ' + b"[" * 17 + b"]" * 17 + b"}", 400),
        (b'{"force": NaN}', 400),
        (b'{"note": 1e999}', 400),
        (b"\xff\xfe", 400),
        (b'{"note": "' + b"x" * (BoundedJSONParser.max_body_size + 1) + b'"}', 413),
    ],
    ids=["nested-50000", "nested-17", "nan", "overflow", "not-utf8", "too-large"],
)
def test_odd_bodies_from_a_permitted_user_are_refused(
    photo: Photo, body: bytes, status: int
) -> None:
    client = signed_in("reanalyze_media", "review_media")
    before = state()

    codes = [
        client.post(url, body, content_type="application/json").status_code
        for url in write_urls(photo)
    ]

    assert codes == [status] * 4
    assert state() == before


def test_bounded_bodies_still_work_and_nul_is_replaced(photo: Photo) -> None:
    client = signed_in("reanalyze_media", "review_media")
    url = write_urls(photo)[3]

    response = client.post(
        url, b'{"note": "nul \\u0000 here"}', content_type="application/json"
    )

    assert response.status_code == 200
    assert ModerationDecision.objects.latest("pk").note == "nul \ufffd here"
