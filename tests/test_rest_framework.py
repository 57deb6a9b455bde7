"""The optional REST API: routes, filters, permissions, queries, schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection
from django.db.models import QuerySet
from django.test.utils import CaptureQueriesContext
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.test import APIClient, APIRequestFactory

from django_cloudinary_analysis import services
from django_cloudinary_analysis.backends.memory import MemoryBackend
from django_cloudinary_analysis.conf import (
    DEFAULT_REJECTION_QUESTIONS as REJECTION_QUESTIONS,
)
from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
    MediaTag,
    ModerationDecision,
    ModerationStatus,
    params_hash,
)
from django_cloudinary_analysis.rest_framework import fields as api_fields
from django_cloudinary_analysis.rest_framework.serializers import (
    AnalyzedMediaListSerializer,
    AnalyzedMediaSerializerMixin,
    prefetch_media_tags,
)
from tests.models import Article, Photo, PlainPhoto, SlugPhoto, UUIDPhoto

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.urls_api")]

API = "/api/analysis"
REPO = Path(__file__).resolve().parents[1]


# -- fixtures -------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _page_size_param(monkeypatch: pytest.MonkeyPatch) -> None:
    # tests/settings.py uses PageNumberPagination with PAGE_SIZE 10; letting
    # the client pick the page size lets a test compare 10 and 100 per page.
    monkeypatch.setattr(
        PageNumberPagination, "page_size_query_param", "page_size", raising=False
    )


def _user(username: str, *, staff: bool = True, perms: tuple[str, ...] = ()) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=staff)
    for codename in perms:
        user.user_permissions.add(
            Permission.objects.get(
                content_type__app_label="cloudinary_analysis", codename=codename
            )
        )
    return User.objects.get(pk=user.pk)  # fresh permission cache


@pytest.fixture
def staff() -> User:
    """Staff without the app's model permissions: read-only."""
    return _user("staff")


@pytest.fixture
def reviewer() -> User:
    """Staff allowed to approve and reject."""
    return _user("reviewer", perms=("review_media",))


@pytest.fixture
def reanalyzer() -> User:
    """Staff allowed to re-run analyses."""
    return _user("reanalyzer", perms=("reanalyze_media",))


def client_for(user: User | None) -> APIClient:
    """An API client authenticated as ``user`` (anonymous for None)."""
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def make_photo(
    django_capture_on_commit_callbacks: Any, image_file: Callable[..., Any]
) -> Callable[..., Photo]:
    """Create a Photo through the real pipeline (memory backend, eager tasks)."""
    counter = iter(range(1, 10_000))

    def make(title: str = "photo", *, moderation: str = "no") -> Photo:
        answers = [{"prompt": q, "value": moderation} for q in REJECTION_QUESTIONS]
        MemoryBackend.set_result(
            "ai_vision_moderation", {"responses": answers, "model_version": 1}
        )
        seed = next(counter)
        with django_capture_on_commit_callbacks(execute=True):
            photo = Photo.objects.create(
                title=title, image=image_file(f"p{seed}.png", seed=seed)
            )
        photo.refresh_from_db()
        return photo

    return make


def add_analysis(
    obj: Any,
    analysis_type: str = "google_tagging",
    *,
    status: str = AnalysisStatus.SUCCEEDED,
    field: str = "image",
    tags: tuple[tuple[str, float | None], ...] = (),
    error: str = "",
) -> Analysis:
    """Store an analysis row (and its tags) directly, without running it."""
    ct = ContentType.objects.get_for_model(obj)
    analysis = Analysis.objects.create(
        content_type=ct,
        object_id=str(obj.pk),
        field_name=field,
        file_name=f"{field}.png",
        analysis_type=analysis_type,
        params_hash=params_hash({}),
        backend="memory",
        status=status,
        error_message=error,
        result={"answers": {}, "responses": [], "caption": None, "quality": None},
        raw={"data": {"analysis": {"note": "raw body"}}},
    )
    MediaTag.objects.bulk_create(
        MediaTag(
            analysis=analysis,
            content_type=ct,
            object_id=str(obj.pk),
            field_name=field,
            name=label.casefold(),
            label=label,
            confidence=confidence,
            analysis_type=analysis_type,
        )
        for label, confidence in tags
    )
    return analysis


def bulk_objects(count: int, *, verdict: str = ModerationStatus.REVIEW) -> list[Photo]:
    """Many photos, each with one analysis, two tags and a verdict (fast)."""
    photos = Photo.objects.bulk_create(Photo(title=f"bulk {i}") for i in range(count))
    ct = ContentType.objects.get_for_model(Photo)
    analyses = Analysis.objects.bulk_create(
        Analysis(
            content_type=ct,
            object_id=str(p.pk),
            field_name="image",
            file_name=f"{p.pk}.png",
            analysis_type="google_tagging",
            params_hash=params_hash({}),
            status=AnalysisStatus.SUCCEEDED,
            result={"answers": {}},
        )
        for p in photos
    )
    MediaTag.objects.bulk_create(
        MediaTag(
            analysis=a,
            content_type=ct,
            object_id=a.object_id,
            field_name="image",
            name=name,
            label=name,
            confidence=conf,
            analysis_type="google_tagging",
        )
        for a in analyses
        for name, conf in (("cat", 0.9), ("sofa", 0.4))
    )
    ModerationDecision.objects.bulk_create(
        ModerationDecision(content_type=ct, object_id=str(p.pk), status=verdict)
        for p in photos
    )
    Photo.objects.filter(pk__in=[p.pk for p in photos]).update(
        moderation_status=verdict
    )
    return photos


def with_app_settings(settings: Any, **values: Any) -> None:
    """Override keys of CLOUDINARY_ANALYSIS for one test."""
    settings.CLOUDINARY_ANALYSIS = {**settings.CLOUDINARY_ANALYSIS, **values}


# -- analyses -------------------------------------------------------------------


def test_analysis_list_nests_tags_and_paginates(
    admin_user: User, make_photo: Callable[..., Photo]
) -> None:
    photos = [make_photo(f"p{i}") for i in range(4)]  # 3 analyses each
    response = client_for(admin_user).get(f"{API}/analyses/")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 12
    assert len(body["results"]) == 10
    assert body["next"].endswith("/api/analysis/analyses/?page=2")
    newest = body["results"][0]
    assert newest["content_type"] == "tests.photo"
    assert newest["object_id"] == str(photos[-1].pk)
    assert "raw" not in newest
    tagging = next(a for a in body["results"] if a["analysis_type"] == "google_tagging")
    assert tagging["tags"] == [
        {
            "name": "photograph",
            "label": "photograph",
            "confidence": 0.9,
            "analysis_type": "google_tagging",
            "field": "image",
            "box": None,
            "analysis": tagging["id"],
        }
    ]
    page2 = client_for(admin_user).get(f"{API}/analyses/?page=2").json()
    assert len(page2["results"]) == 2


def test_analysis_detail_shows_raw_response(admin_user: User) -> None:
    analysis = add_analysis(Photo.objects.create(title="x"))
    response = client_for(admin_user).get(f"{API}/analyses/{analysis.pk}/")
    assert response.status_code == 200
    assert response.json()["raw"] == {"data": {"analysis": {"note": "raw body"}}}
    assert response.json()["request_id"] == ""
    assert client_for(admin_user).get(f"{API}/analyses/999999/").status_code == 404


def test_analysis_filters(admin_user: User) -> None:
    one = Photo.objects.create(title="one")
    two = Photo.objects.create(title="two")
    article = Article.objects.create(title="a")
    tagged = add_analysis(one, tags=(("Cat", 0.8),))
    weak = add_analysis(two, tags=(("Cat", 0.3),))
    failed = add_analysis(
        two, "ai_vision_moderation", status=AnalysisStatus.FAILED, error="boom"
    )
    cover = add_analysis(article, "ai_vision_tagging", field="cover")
    client = client_for(admin_user)

    def ids(query: str) -> set[int]:
        response = client.get(f"{API}/analyses/?{query}")
        assert response.status_code == 200, response.json()
        return {a["id"] for a in response.json()["results"]}

    assert ids("") == {tagged.pk, weak.pk, failed.pk, cover.pk}
    assert ids("status=failed") == {failed.pk}
    assert ids("status=failed,succeeded") == {tagged.pk, weak.pk, failed.pk, cover.pk}
    assert ids("type=ai_vision_moderation") == {failed.pk}
    assert ids("analysis_type=google_tagging") == {tagged.pk, weak.pk}
    assert ids("content_type=tests.article") == {cover.pk}
    assert ids(f"content_type=tests.photo&object_id={two.pk}") == {weak.pk, failed.pk}
    assert ids("field=cover") == {cover.pk}
    # Tag names are normalised like stored ones.
    assert ids("tag=%20CAT%20") == {tagged.pk, weak.pk}
    assert ids("tag=cat&min_confidence=0.5") == {tagged.pk}
    assert ids("tag=dog") == set()
    reason = client.get(f"{API}/analyses/?status=failed").json()["results"][0]
    assert reason["reason"] == "boom"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=done", "status"),
        ("type=nope", "analysis_type"),
        ("content_type=auth.user", "content_type"),
        ("content_type=tests.plainphoto", "content_type"),
        ("content_type=nonsense", "content_type"),
        ("min_confidence=0.5", "min_confidence"),
        ("tag=cat&min_confidence=high", "min_confidence"),
        ("tag=cat&min_confidence=nan", "min_confidence"),
    ],
)
def test_analysis_filters_reject_bad_values(
    admin_user: User, query: str, field: str
) -> None:
    response = client_for(admin_user).get(f"{API}/analyses/?{query}")
    assert response.status_code == 400
    assert field in response.json()


def test_reanalyze_one_analysis(
    reanalyzer: User,
    make_photo: Callable[..., Photo],
    django_capture_on_commit_callbacks: Any,
) -> None:
    photo = make_photo()
    tagging = Analysis.objects.for_object(photo).get(analysis_type="google_tagging")
    client = client_for(reanalyzer)
    url = f"{API}/analyses/{tagging.pk}/reanalyze/"

    response = client.post(url, {}, format="json")
    assert response.status_code == 200
    assert response.json()["scheduled"] == []
    assert "force=true" in response.json()["detail"]

    MemoryBackend.calls.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"force": True}, format="json")
    assert response.status_code == 202
    [scheduled] = response.json()["scheduled"]
    assert scheduled["analysis_type"] == "google_tagging"
    assert scheduled["field"] == "image"
    assert scheduled["status"] == "queued"
    assert [c.analysis_type for c in MemoryBackend.calls] == ["google_tagging"]
    rerun = Analysis.objects.get(pk=scheduled["id"])
    assert rerun.status == AnalysisStatus.SUCCEEDED
    assert rerun.allow_reuse is False


def test_reanalyze_goes_through_services(
    reanalyzer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = Photo.objects.create(title="x")
    analysis = add_analysis(photo, "image_quality")
    seen: list[dict[str, Any]] = []

    def fake_schedule(obj: Any, **kwargs: Any) -> list[Analysis]:
        seen.append({"obj": obj, **kwargs})
        return []

    monkeypatch.setattr(services, "schedule", fake_schedule)
    client = client_for(reanalyzer)
    client.post(f"{API}/analyses/{analysis.pk}/reanalyze/", {"force": True})
    client.post(
        f"{API}/objects/tests.photo/{photo.pk}/reanalyze/",
        {"types": ["image_quality"], "force": False},
        format="json",
    )
    assert seen == [
        {"obj": photo, "fields": ["image"], "types": ["image_quality"], "force": True},
        {"obj": photo, "fields": None, "types": ["image_quality"], "force": False},
    ]


# -- objects ----------------------------------------------------------------------


def test_object_summary(admin_user: User, make_photo: Callable[..., Photo]) -> None:
    photo = make_photo("summary", moderation="unknown")
    response = client_for(admin_user).get(f"{API}/objects/tests.photo/{photo.pk}/")
    assert response.status_code == 200
    body = response.json()
    assert body["content_type"] == "tests.photo"
    assert body["object_id"] == str(photo.pk)
    assert body["display"] == "summary"
    assert body["moderation_status"] == "review"
    assert body["decision"]["moderation_status"] == "review"
    assert body["decision"]["decided_by_kind"] == "auto"
    assert body["decision"]["reasons"][0]["rule"] == "question_unknown"
    assert [(r["field"], r["analysis_type"], r["status"]) for r in body["results"]] == [
        ("image", "ai_vision_moderation", "succeeded"),
        ("image", "google_tagging", "succeeded"),
        ("image", "image_quality", "succeeded"),
    ]
    quality = body["results"][2]["result"]["quality"]
    assert quality == {"word": "high", "score": 0.9, "confidence": 0.9}
    assert [t["name"] for t in body["tags"]] == ["photograph"]


def test_object_summary_shows_failure_reason(admin_user: User) -> None:
    photo = Photo.objects.create(title="x")
    add_analysis(photo, "image_quality", status=AnalysisStatus.FAILED, error="quota")
    body = client_for(admin_user).get(f"{API}/objects/tests.photo/{photo.pk}/").json()
    assert body["decision"] is None
    assert body["moderation_status"] == "pending"
    assert body["results"] == []  # the stored file name is not the current one
    Photo.objects.filter(pk=photo.pk).update(image="image.png")
    body = client_for(admin_user).get(f"{API}/objects/tests.photo/{photo.pk}/").json()
    [result] = body["results"]
    assert (result["status"], result["reason"]) == ("failed", "quota")


def test_objects_with_uuid_and_string_keys(admin_user: User) -> None:
    uuid_photo = UUIDPhoto.objects.create()
    SlugPhoto.objects.create(slug="a-slug")
    client = client_for(admin_user)
    url = f"{API}/objects/tests.uuidphoto/{uuid_photo.pk}/"
    assert client.get(url).json()["object_id"] == str(uuid_photo.pk)
    url = f"{API}/objects/tests.slugphoto/a-slug/"
    assert client.get(url).json()["object_id"] == "a-slug"


@pytest.mark.parametrize(
    "path",
    [
        "objects/tests.plainphoto/{plain}/",  # no mixin
        "objects/auth.user/1/",
        "objects/tests.nomodel/1/",
        "objects/photo/1/",
        "objects/tests.photo/999999/",
        "objects/tests.photo/not-a-number/",
        "objects/tests.uuidphoto/not-a-uuid/",
        "moderation/tests.plainphoto/{plain}/approve/",
    ],
)
def test_only_mixin_objects_are_addressable(admin_user: User, path: str) -> None:
    plain = PlainPhoto.objects.create()
    url = f"{API}/" + path.format(plain=plain.pk)
    client = client_for(admin_user)
    response = client.post(url, {}) if "approve" in path else client.get(url)
    assert response.status_code == 404


def test_reanalyze_object_with_types_and_force(
    reanalyzer: User, django_capture_on_commit_callbacks: Any, image_file: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        article = Article.objects.create(
            cover=image_file("c.png", seed=1), thumbnail=image_file("t.png", seed=2)
        )
    client = client_for(reanalyzer)
    url = f"{API}/objects/tests.article/{article.pk}/reanalyze/"

    response = client.post(url, {"types": ["image_quality"]}, format="json")
    assert response.status_code == 200  # already succeeded
    assert response.json()["scheduled"] == []

    response = client.post(
        url, {"types": ["image_quality"], "force": True}, format="json"
    )
    assert response.status_code == 202
    assert [(a["field"], a["analysis_type"]) for a in response.json()["scheduled"]] == [
        ("thumbnail", "image_quality")
    ]

    response = client.post(url, {"fields": ["cover"], "force": True}, format="json")
    assert sorted(a["analysis_type"] for a in response.json()["scheduled"]) == [
        "ai_vision_moderation",
        "ai_vision_tagging",
    ]
    tagging = next(
        a
        for a in response.json()["scheduled"]
        if a["analysis_type"] == "ai_vision_tagging"
    )
    assert tagging["params"]["tag_definitions"][0]["name"] == "cat"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"types": ["google_tagging"]}, "types"),  # not configured on Article
        ({"types": ["no_such_type"]}, "types"),
        ({"fields": ["title"]}, "fields"),
        ({"fields": ["thumbnail"], "types": ["ai_vision_moderation"]}, "types"),
        ({"types": []}, "types"),
        ({"force": "maybe"}, "force"),
    ],
)
def test_reanalyze_object_rejects_bad_bodies(
    reanalyzer: User, body: dict[str, Any], field: str
) -> None:
    article = Article.objects.create()
    response = client_for(reanalyzer).post(
        f"{API}/objects/tests.article/{article.pk}/reanalyze/", body, format="json"
    )
    assert response.status_code == 400
    assert field in response.json()
    assert not Analysis.objects.exists()


# -- moderation -------------------------------------------------------------------


def test_moderation_queue_across_models(
    admin_user: User, make_photo: Callable[..., Photo], image_file: Any
) -> None:
    review = make_photo("review me", moderation="unknown")
    make_photo("fine")  # approved by the policy
    rejected = make_photo("bad", moderation="yes")
    article = Article.objects.create(title="no files yet")
    services.content_changed(
        article, ["cover"], previous_status="pending", status_written=False
    )  # pending: a decision, no analyses yet
    client = client_for(admin_user)

    body = client.get(f"{API}/moderation/").json()
    assert body["count"] == 2
    first, second = body["results"]
    assert (first["content_type"], first["object_id"]) == (
        "tests.photo",
        str(review.pk),
    )
    assert first["moderation_status"] == "review"
    assert first["display"] == "review me"
    assert first["decision"]["reasons"][0]["rule"] == "question_unknown"
    assert [t["name"] for t in first["tags"]] == ["photograph"]
    assert (second["content_type"], second["moderation_status"]) == (
        "tests.article",
        "pending",
    )
    assert str(rejected.pk) not in {
        r["object_id"] for r in body["results"] if r["content_type"] == "tests.photo"
    }

    only_photos = client.get(f"{API}/moderation/?content_type=tests.photo").json()
    assert [r["object_id"] for r in only_photos["results"]] == [str(review.pk)]
    pending = client.get(f"{API}/moderation/?moderation_status=pending").json()
    assert [r["content_type"] for r in pending["results"]] == ["tests.article"]
    bad = client.get(f"{API}/moderation/?moderation_status=approved")
    assert bad.status_code == 400
    assert client.get(f"{API}/moderation/?content_type=x.y").status_code == 400


def test_approve_and_reject_record_human_decisions(
    reviewer: User, make_photo: Callable[..., Photo]
) -> None:
    photo = make_photo("review me", moderation="unknown")
    client = client_for(reviewer)

    response = client.post(
        f"{API}/moderation/tests.photo/{photo.pk}/approve/",
        {"note": "looks fine"},
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["moderation_status"] == "approved"
    assert body["decision"]["previous_status"] == "review"
    assert body["decision"]["decided_by_kind"] == "human"
    assert body["decision"]["note"] == "looks fine"
    assert body["decision"]["decided_by"] == reviewer.pk
    assert body["decision"]["decided_by_username"] == "reviewer"
    assert body["tags"][0]["name"] == "photograph"
    photo.refresh_from_db()
    assert photo.moderation_status == ModerationStatus.APPROVED
    assert client.get(f"{API}/moderation/").json()["count"] == 0

    response = client.post(f"{API}/moderation/tests.photo/{photo.pk}/reject/")
    assert response.status_code == 200
    assert response.json()["moderation_status"] == "rejected"
    assert response.json()["decision"]["note"] == ""
    latest = ModerationDecision.objects.for_object(photo).first()
    assert latest is not None
    assert (latest.status, latest.decided_by, latest.decided_by_kind) == (
        "rejected",
        reviewer,
        "human",
    )


def test_review_note_is_validated(reviewer: User) -> None:
    photo = Photo.objects.create()
    response = client_for(reviewer).post(
        f"{API}/moderation/tests.photo/{photo.pk}/approve/",
        {"note": "x" * 10001},
        format="json",
    )
    assert response.status_code == 400
    assert "note" in response.json()
    assert not ModerationDecision.objects.exists()


def test_browsable_api_renders_every_route(
    admin_user: User, endpoints: dict[str, tuple[str, str]]
) -> None:
    client = client_for(admin_user)
    for method, url in endpoints.values():
        response = client.get(url, HTTP_ACCEPT="text/html")
        assert response.status_code == (405 if method == "post" else 200), url
        assert response["Content-Type"].startswith("text/html")
        response = client.options(url)
        assert response.status_code == 200, url


# -- permissions ----------------------------------------------------------------


def _endpoints(photo: Photo, analysis: Analysis) -> dict[str, tuple[str, str]]:
    return {
        "analysis list": ("get", f"{API}/analyses/"),
        "analysis detail": ("get", f"{API}/analyses/{analysis.pk}/"),
        "analysis reanalyze": ("post", f"{API}/analyses/{analysis.pk}/reanalyze/"),
        "object summary": ("get", f"{API}/objects/tests.photo/{photo.pk}/"),
        "object reanalyze": (
            "post",
            f"{API}/objects/tests.photo/{photo.pk}/reanalyze/",
        ),
        "moderation list": ("get", f"{API}/moderation/"),
        "approve": ("post", f"{API}/moderation/tests.photo/{photo.pk}/approve/"),
        "reject": ("post", f"{API}/moderation/tests.photo/{photo.pk}/reject/"),
    }


WRITES = {
    "analysis reanalyze": "reanalyze_media",
    "object reanalyze": "reanalyze_media",
    "approve": "review_media",
    "reject": "review_media",
}


@pytest.fixture
def endpoints() -> dict[str, tuple[str, str]]:
    """Every route of the API for one photo and its analysis."""
    photo = Photo.objects.create(title="x")
    # Set the file without the save signal, so nothing is scheduled yet.
    Photo.objects.filter(pk=photo.pk).update(image="image.png")
    photo.refresh_from_db()
    return _endpoints(photo, add_analysis(photo))


def test_anonymous_is_refused_everywhere(endpoints: dict[str, Any]) -> None:
    client = client_for(None)
    for method, url in endpoints.values():
        response = getattr(client, method)(url)
        assert response.status_code in (401, 403), url
    assert not ModerationDecision.objects.exists()


def test_anonymous_gets_401_with_basic_auth_first(
    endpoints: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # DRF answers 401 when the first authenticator names a challenge.
    from rest_framework.authentication import BasicAuthentication
    from rest_framework.views import APIView

    monkeypatch.setattr(APIView, "authentication_classes", [BasicAuthentication])
    for method, url in endpoints.values():
        response = getattr(client_for(None), method)(url)
        assert response.status_code == 401, url
    assert response["WWW-Authenticate"].startswith("Basic")


def test_non_staff_users_are_refused(endpoints: dict[str, Any]) -> None:
    client = client_for(_user("member", staff=False, perms=("review_media",)))
    for method, url in endpoints.values():
        assert getattr(client, method)(url).status_code == 403, url


def test_staff_reads_but_writes_need_model_permissions(
    endpoints: dict[str, Any], staff: User
) -> None:
    client = client_for(staff)
    for name, (method, url) in endpoints.items():
        response = getattr(client, method)(url, {}, format="json")
        expected = 403 if name in WRITES else 200
        assert response.status_code == expected, name
    assert not ModerationDecision.objects.exists()
    assert Analysis.objects.count() == 1


@pytest.mark.parametrize("codename", ["reanalyze_media", "review_media"])
def test_each_write_needs_its_own_permission(
    endpoints: dict[str, Any], codename: str
) -> None:
    client = client_for(_user("writer", perms=(codename,)))
    for name, permission in WRITES.items():
        method, url = endpoints[name]
        response = getattr(client, method)(url, {}, format="json")
        allowed = response.status_code in (200, 202)
        assert allowed == (permission == codename), (name, response.status_code)


def test_permission_classes_setting(endpoints: dict[str, Any], settings: Any) -> None:
    member = _user("member", staff=False)
    with_app_settings(
        settings,
        API_PERMISSION_CLASSES=["rest_framework.permissions.IsAuthenticated"],
    )
    client = client_for(member)
    assert client.get(endpoints["analysis list"][1]).status_code == 200
    assert client.get(endpoints["object summary"][1]).status_code == 200
    # Model permissions still guard the writes.
    assert client.post(endpoints["approve"][1]).status_code == 403
    assert client_for(None).get(endpoints["analysis list"][1]).status_code in (
        401,
        403,
    )


def test_permission_classes_setting_with_a_bad_path(
    endpoints: dict[str, Any], settings: Any, admin_user: User
) -> None:
    with_app_settings(settings, API_PERMISSION_CLASSES=["nowhere.Nothing"])
    client = client_for(admin_user)
    with pytest.raises(ImproperlyConfigured, match="API_PERMISSION_CLASSES"):
        client.get(endpoints["analysis list"][1])


# -- object-level filtering -------------------------------------------------------

#: Objects the test filter lets through, per model (None: all of them).
VISIBLE: dict[type, Any] = {}


def own_photos(request: Any, queryset: QuerySet[Any]) -> QuerySet[Any]:
    """A site's rule for the tests: photos titled "<username>: ...", nothing else."""
    if queryset.model is Photo:
        return queryset.filter(title__startswith=f"{request.user.get_username()}:")
    return queryset.none()


def listed(request: Any, queryset: QuerySet[Any]) -> QuerySet[Any]:
    """Objects named in VISIBLE (for key types other than integers)."""
    allowed = VISIBLE.get(queryset.model)
    return queryset.none() if allowed is None else queryset.filter(pk__in=allowed)


def test_object_filter_limits_every_endpoint(
    settings: Any, make_photo: Callable[..., Photo]
) -> None:
    with_app_settings(settings, API_OBJECT_FILTER=f"{__name__}.own_photos")
    alice = _user("alice", perms=("reanalyze_media", "review_media"))
    mine = make_photo("alice: mine", moderation="unknown")
    theirs = make_photo("bob: theirs", moderation="unknown")
    article = Article.objects.create()
    add_analysis(article, "image_quality", field="thumbnail")
    client = client_for(alice)

    analyses = client.get(f"{API}/analyses/").json()
    assert {a["object_id"] for a in analyses["results"]} == {str(mine.pk)}
    assert analyses["count"] == 3
    hidden = Analysis.objects.for_object(theirs).first()
    assert hidden is not None
    assert client.get(f"{API}/analyses/{hidden.pk}/").status_code == 404
    response = client.post(f"{API}/analyses/{hidden.pk}/reanalyze/", {"force": True})
    assert response.status_code == 404

    queue = client.get(f"{API}/moderation/").json()
    assert [r["object_id"] for r in queue["results"]] == [str(mine.pk)]

    for path in (
        f"objects/tests.photo/{theirs.pk}/",
        f"objects/tests.article/{article.pk}/",
    ):
        assert client.get(f"{API}/{path}").status_code == 404
    assert client.get(f"{API}/objects/tests.photo/{mine.pk}/").status_code == 200
    for path in (
        f"objects/tests.photo/{theirs.pk}/reanalyze/",
        f"moderation/tests.photo/{theirs.pk}/approve/",
        f"moderation/tests.photo/{theirs.pk}/reject/",
    ):
        assert client.post(f"{API}/{path}", {}, format="json").status_code == 404
    theirs.refresh_from_db()
    assert theirs.moderation_status == ModerationStatus.REVIEW
    response = client.post(f"{API}/moderation/tests.photo/{mine.pk}/approve/")
    assert response.status_code == 200


def test_object_filter_matches_uuid_and_string_keys(
    settings: Any, admin_user: User
) -> None:
    with_app_settings(settings, API_OBJECT_FILTER=f"{__name__}.listed")
    shown_uuid, hidden_uuid = UUIDPhoto.objects.create(), UUIDPhoto.objects.create()
    shown_slug = SlugPhoto.objects.create(slug="shown")
    SlugPhoto.objects.create(slug="hidden")
    shown_photo, hidden_photo = Photo.objects.create(), Photo.objects.create()
    expected = {
        add_analysis(shown_uuid).pk,
        add_analysis(shown_slug).pk,
        add_analysis(shown_photo).pk,
    }
    for obj in (hidden_uuid, SlugPhoto.objects.get(pk="hidden"), hidden_photo):
        add_analysis(obj)
    VISIBLE.clear()
    VISIBLE.update(
        {UUIDPhoto: [shown_uuid.pk], SlugPhoto: ["shown"], Photo: [shown_photo.pk]}
    )
    try:
        body = client_for(admin_user).get(f"{API}/analyses/").json()
    finally:
        VISIBLE.clear()
    assert {a["id"] for a in body["results"]} == expected


def test_object_filter_can_be_a_view_method(admin_user: User) -> None:
    from django_cloudinary_analysis.rest_framework.views import AnalysisViewSet

    class OwnAnalyses(AnalysisViewSet):
        def filter_objects(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
            if queryset.model is Photo:
                return queryset.filter(title="shown")
            return queryset.none()

    shown = add_analysis(Photo.objects.create(title="shown"))
    add_analysis(Photo.objects.create(title="hidden"))
    request = APIRequestFactory().get("/analyses/")
    request.user = admin_user
    response = OwnAnalyses.as_view({"get": "list"})(request)
    assert [a["id"] for a in response.data["results"]] == [shown.pk]


def test_object_filter_setting_with_a_bad_path(settings: Any, admin_user: User) -> None:
    with_app_settings(settings, API_OBJECT_FILTER="nowhere.visible")
    with pytest.raises(ImproperlyConfigured, match="API_OBJECT_FILTER"):
        client_for(admin_user).get(f"{API}/analyses/")


# -- queries ------------------------------------------------------------------------


def _count_queries(client: APIClient, url: str) -> tuple[int, dict[str, Any]]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries), response.json()


@pytest.mark.parametrize("object_filter", [None, f"{__name__}.own_photos"])
def test_list_endpoints_run_constant_queries(
    admin_user: User, settings: Any, object_filter: str | None
) -> None:
    photos = bulk_objects(120)
    Article.objects.create()  # a second mixin model in the visibility subquery
    if object_filter:
        with_app_settings(settings, API_OBJECT_FILTER=object_filter)
        Photo.objects.filter(pk__in=[p.pk for p in photos]).update(title="admin: x")
    client = client_for(admin_user)
    for url in (f"{API}/analyses/", f"{API}/moderation/"):
        small, body10 = _count_queries(client, f"{url}?page_size=10")
        large, body100 = _count_queries(client, f"{url}?page_size=100")
        assert len(body10["results"]) == 10
        assert len(body100["results"]) == 100
        assert all(len(r["tags"]) == 2 for r in body100["results"])
        assert small == large, url


def test_page_size_follows_drf_settings(admin_user: User) -> None:
    bulk_objects(12)
    body = client_for(admin_user).get(f"{API}/moderation/").json()
    assert (body["count"], len(body["results"])) == (12, 10)
    assert body["next"].endswith("/api/analysis/moderation/?page=2")


def test_paginated_by_default_without_site_paging(
    admin_user: User, settings: Any
) -> None:
    settings.REST_FRAMEWORK = {
        k: v
        for k, v in settings.REST_FRAMEWORK.items()
        if k not in ("DEFAULT_PAGINATION_CLASS", "PAGE_SIZE")
    }
    settings.CLOUDINARY_ANALYSIS = {**settings.CLOUDINARY_ANALYSIS, "API_PAGE_SIZE": 5}
    bulk_objects(7)
    client = client_for(admin_user)
    for url in (f"{API}/moderation/", f"{API}/analyses/"):
        body = client.get(url).json()
        assert len(body["results"]) == 5 and body["next"], url
        assert len(client.get(url, {"page_size": 2}).json()["results"]) == 2
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "API_PAGE_SIZE": None,
    }
    assert isinstance(client.get(f"{API}/moderation/").json(), list)


# -- the serializer mixin ---------------------------------------------------------


class PhotoSerializer(AnalyzedMediaSerializerMixin, serializers.ModelSerializer):
    """How a site embeds tags and the verdict in its own serializer."""

    class Meta:
        model = Photo
        fields = ["id", "title", "moderation_status", "media_tags"]


class ListedPhotoSerializer(serializers.ListSerializer):
    """A site's own list serializer (kept as is)."""


class CustomListPhotoSerializer(PhotoSerializer):
    class Meta(PhotoSerializer.Meta):
        list_serializer_class = ListedPhotoSerializer


def test_serializer_mixin_embeds_tags_and_verdict() -> None:
    [photo] = bulk_objects(1)
    data = PhotoSerializer(Photo.objects.get(pk=photo.pk)).data
    assert data["moderation_status"] == "review"
    assert [(t["name"], t["confidence"]) for t in data["media_tags"]] == [
        ("cat", 0.9),
        ("sofa", 0.4),
    ]
    assert PhotoSerializer(Photo.objects.create()).data["media_tags"] == []


@pytest.mark.parametrize("how", ["list serializer", "prefetch_media_tags"])
def test_serializer_mixin_lists_run_constant_queries(how: str) -> None:
    bulk_objects(100)

    def render(count: int) -> tuple[int, list[Any]]:
        queryset = Photo.objects.order_by("pk")
        with CaptureQueriesContext(connection) as ctx:
            if how == "list serializer":
                data = PhotoSerializer(queryset[:count], many=True).data
            else:
                objects = list(prefetch_media_tags(queryset)[:count])
                data = [PhotoSerializer(o).data for o in objects]
        return len(ctx.captured_queries), data

    small, data10 = render(10)
    large, data100 = render(100)
    assert (len(data10), len(data100)) == (10, 100)
    assert all(len(item["media_tags"]) == 2 for item in data100)
    assert small == large == 2  # the objects, then their tags


def test_serializer_mixin_keeps_a_sites_list_serializer() -> None:
    serializer = CustomListPhotoSerializer([], many=True)
    assert type(serializer) is ListedPhotoSerializer
    assert type(PhotoSerializer([], many=True)) is AnalyzedMediaListSerializer


def test_attach_media_tags_on_mixed_models() -> None:
    photo = Photo.objects.create()
    article = Article.objects.create()
    add_analysis(photo, tags=(("Dog", 0.7), ("Unscored", None)))
    add_analysis(article, field="cover", tags=(("Cat", 0.5),))
    with CaptureQueriesContext(connection) as ctx:
        api_fields.attach_media_tags([photo, article])
        api_fields.attach_media_tags([photo])  # already loaded
    assert len(ctx.captured_queries) == 1
    assert [t.name for t in api_fields.media_tags_of(photo)] == ["dog", "unscored"]
    assert [t.name for t in api_fields.media_tags_of(article)] == ["cat"]


# -- OpenAPI, packaging, secrets --------------------------------------------------


def test_openapi_schema_has_no_warnings(tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    call_command(
        "spectacular",
        "--urlconf",
        "tests.urls_api",
        "--fail-on-warn",
        "--validate",
        "--format",
        "openapi-json",
        "--file",
        str(target),
        stdout=StringIO(),
        stderr=StringIO(),
    )
    schema = json.loads(target.read_text())
    assert set(schema["paths"]) == {
        "/api/analysis/analyses/",
        "/api/analysis/analyses/{id}/",
        "/api/analysis/analyses/{id}/reanalyze/",
        "/api/analysis/objects/{content_type}/{object_id}/",
        "/api/analysis/objects/{content_type}/{object_id}/reanalyze/",
        "/api/analysis/moderation/",
        "/api/analysis/moderation/{content_type}/{object_id}/approve/",
        "/api/analysis/moderation/{content_type}/{object_id}/reject/",
        "/api/analysis/moderation/{content_type}/{object_id}/appeal/",
    }
    listing = schema["paths"]["/api/analysis/analyses/"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {
        "status",
        "analysis_type",
        "content_type",
        "object_id",
        "tag",
        "min_confidence",
        "field",
        "page",
    }
    reanalyze = schema["paths"][
        "/api/analysis/objects/{content_type}/{object_id}/reanalyze/"
    ]["post"]
    body = reanalyze["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/ReanalyzeObject")
    assert set(reanalyze["responses"]) == {"200", "202"}


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
        check=False,
    )


MINIMAL_SETTINGS = """
import sys
from django.conf import settings
settings.configure(
    INSTALLED_APPS=[{apps}
        "django.contrib.auth", "django.contrib.contenttypes",
        "django_cloudinary_analysis",
    ],
    DATABASES={{"default": {{"ENGINE": "django.db.backends.sqlite3",
                            "NAME": ":memory:"}}}},
    ROOT_URLCONF="tests.urls_api",
)
import django
django.setup()
"""


def test_api_works_without_drf_spectacular() -> None:
    code = (
        "import sys\nsys.modules['drf_spectacular'] = None\n"
        + MINIMAL_SETTINGS.format(apps='"rest_framework",')
        + "from django_cloudinary_analysis.rest_framework import urls, schema\n"
        "from django.urls import reverse\n"
        "assert not schema.HAS_SPECTACULAR\n"
        "print(reverse('cloudinary_analysis_api:moderation-list'))\n"
    )
    result = _run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "/api/analysis/moderation/"


def test_core_package_never_imports_drf() -> None:
    package = REPO / "django_cloudinary_analysis"
    modules = sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts)
        for p in package.rglob("*.py")
        if not {"rest_framework", "migrations"} & set(p.relative_to(package).parts)
    )
    code = (
        MINIMAL_SETTINGS.format(
            apps='"django.contrib.admin", "django.contrib.sessions", '
            '"django.contrib.messages",'
        )
        + "import importlib\n"
        + f"for name in {modules!r}:\n"
        + "    importlib.import_module(name)\n"
        + "leaked = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('rest_framework', 'drf_spectacular'))\n"
        "print(leaked)\n"
    )
    result = _run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_no_setting_value_leaks(
    settings: Any, make_photo: Callable[..., Photo]
) -> None:
    reviewer = _user("reviewer2", perms=("review_media", "reanalyze_media"))
    photo = make_photo("leak check", moderation="unknown")
    analysis = Analysis.objects.for_object(photo).first()
    assert analysis is not None
    secrets = [
        settings.CLOUDINARY_ANALYSIS["API_SECRET"],
        settings.CLOUDINARY_ANALYSIS["API_KEY"],
        settings.SECRET_KEY,
    ]
    client = client_for(reviewer)
    responses = [
        client.get(f"{API}/analyses/"),
        client.get(f"{API}/analyses/{analysis.pk}/"),
        client.get(f"{API}/analyses/?status=nope"),
        client.get(f"{API}/objects/tests.photo/{photo.pk}/"),
        client.get(f"{API}/moderation/"),
        client.post(f"{API}/objects/tests.photo/{photo.pk}/reanalyze/", {"x": 1}),
        client.post(f"{API}/analyses/{analysis.pk}/reanalyze/", {"force": "x"}),
        client.post(f"{API}/analyses/{analysis.pk}/reanalyze/"),
        client.post(f"{API}/moderation/tests.photo/{photo.pk}/approve/"),
        client.post(f"{API}/moderation/tests.photo/{photo.pk}/reject/", {"x": 1}),
        client.get(f"{API}/objects/tests.plainphoto/1/"),
        client_for(None).get(f"{API}/analyses/"),
    ]
    for response in responses:
        text = response.content.decode()
        for secret in secrets:
            assert secret not in text
