"""Appeals: the uploader objects through the API (rest_framework/appeals.py) or
the page (accountability/views.py); a reviewer answers."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from django.core import mail
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from django_cloudinary_analysis import services, signals
from django_cloudinary_analysis.accountability import appeals
from django_cloudinary_analysis.models import (
    Appeal,
    ModerationDecision,
    Notification,
    StatementOfReasons,
)
from tests.models import OwnedPhoto, Photo
from tests.support.accountability import (
    URLCONF,
    image,
    reject_automatically,
    user,
)

pytestmark = [pytest.mark.django_db, pytest.mark.urls(URLCONF)]

API = "/api/analysis/moderation/tests.ownedphoto"
QUESTION = "Does the image contain graphic violence or gore?"


@pytest.fixture
def notify(settings: Any) -> None:
    settings.CLOUDINARY_ANALYSIS = {
        **settings.CLOUDINARY_ANALYSIS,
        "NOTIFY_UPLOADERS": True,
        "APPEAL_BASE_URL": "https://site.example",
    }


@pytest.fixture
def rejected(django_capture_on_commit_callbacks: Any, memory_backend: Any) -> Any:
    """An upload by ``owner`` that the policy rejected."""
    owner = user("owner")
    reject_automatically(memory_backend, QUESTION)
    with django_capture_on_commit_callbacks(execute=True):
        photo = OwnedPhoto.objects.create(owner=owner, image=image())
    photo.refresh_from_db()
    assert photo.moderation_status == "rejected"
    return photo


def client_for(who: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(who)
    return client


def post_appeal(photo: Any, who: Any, note: str = "It is a film still.") -> Any:
    return client_for(who).post(
        f"{API}/{photo.pk}/appeal/", {"note": note}, format="json"
    )


def test_appeal_through_the_api_is_answered_by_a_reviewer(
    rejected: Any, notify: Any, django_capture_on_commit_callbacks: Any
) -> None:
    owner = rejected.owner
    # The rejection came with a statement the uploader can read.
    body = client_for(owner).get(f"{API}/{rejected.pk}/appeal/").json()
    assert body["status"] == "rejected" and body["automated"] is True
    assert body["can_appeal"] is True
    assert any(QUESTION in ground for ground in body["grounds"])

    opened: list[Any] = []
    signals.appeal_opened.connect(
        lambda **kw: opened.append(kw["appeal"]), weak=False, dispatch_uid="t1"
    )
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = post_appeal(rejected, owner)
    finally:
        signals.appeal_opened.disconnect(dispatch_uid="t1")
    assert response.status_code == 201, response.content
    appeal = Appeal.objects.get()
    assert opened == [appeal]
    assert (appeal.status, appeal.note, appeal.appellant) == (
        "open",
        "It is a film still.",
        owner,
    )
    rejected.refresh_from_db()
    assert rejected.moderation_status == "review"
    # The queue marks it as an appeal.
    queue = appeals.annotate_queue(ModerationDecision.objects.for_object(rejected))
    assert [(d.status, d.is_appeal) for d in queue][:2] == [
        ("review", True),
        ("rejected", False),
    ]
    assert list(appeals.open_for(OwnedPhoto.objects.all())) == [rejected]
    # Once per decision.
    again = post_appeal(rejected, owner)
    assert again.status_code == 409 and again.json()["code"] == "not_rejected"

    reviewer = user(
        "reviewer", staff=True, perms=("review_media", "view_moderationdecision")
    )
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        answer = client_for(reviewer).post(
            f"/api/analysis/moderation/tests.ownedphoto/{rejected.pk}/approve/",
            {"note": "fine"},
            format="json",
        )
    assert answer.status_code == 200, answer.content
    appeal.refresh_from_db()
    assert appeal.status == "overturned" and appeal.closed_at is not None
    assert appeal.closing_decision.decided_by == reviewer
    assert list(appeals.open_for(OwnedPhoto.objects.all())) == []
    [message] = mail.outbox
    assert message.to == ["owner@example.com"]
    assert "approved it" in message.body
    note = Notification.objects.get(kind="appeal_closed")
    assert (note.status, note.attempts, note.appeal) == ("sent", 1, appeal)
    history = client_for(owner).get(f"{API}/{rejected.pk}/appeal/").json()
    assert history["status"] == "approved"
    assert [a["status"] for a in history["appeals"]] == ["overturned"]


def test_upheld_appeal_is_final(
    rejected: Any, notify: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        assert post_appeal(rejected, rejected.owner).status_code == 201
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        final = services.reject(rejected, user=user("mod", staff=True), note="gore")
    appeal = Appeal.objects.get()
    assert appeal.status == "upheld" and appeal.closing_decision == final
    statement = StatementOfReasons.objects.get(decision=final)
    assert statement.automated is False and statement.appealable is False
    # One email: the answer, carrying the new statement.
    [message] = mail.outbox
    assert "kept the rejection" in message.body and "gore" in message.body
    refused = post_appeal(rejected, rejected.owner)
    assert refused.status_code == 409 and refused.json()["code"] == "final"


def test_only_the_uploader_may_appeal(rejected: Any) -> None:
    stranger = user("stranger")
    assert post_appeal(rejected, stranger).status_code == 404
    assert client_for(stranger).get(f"{API}/{rejected.pk}/appeal/").status_code == 404
    assert APIClient().post(f"{API}/{rejected.pk}/appeal/").status_code in (401, 403)
    assert post_appeal(rejected, rejected.owner, "x" * 6000).status_code == 400
    assert Appeal.objects.count() == 0
    with pytest.raises(appeals.AppealError) as info:
        appeals.open_appeal(rejected, stranger)
    assert info.value.code == "not_owner"


def test_an_approved_object_cannot_be_appealed(
    django_capture_on_commit_callbacks: Any,
) -> None:
    owner = user("owner")
    with django_capture_on_commit_callbacks(execute=True):
        photo = OwnedPhoto.objects.create(owner=owner, image=image())
    response = post_appeal(photo, owner)
    assert response.status_code == 409 and response.json()["code"] == "not_rejected"


def test_a_new_file_supersedes_the_appeal(
    rejected: Any, django_capture_on_commit_callbacks: Any, memory_backend: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        post_appeal(rejected, rejected.owner)
    memory_backend.reset()
    with django_capture_on_commit_callbacks(execute=True):
        rejected.image = image("other.png", seed=3)
        rejected.save()
    assert Appeal.objects.get().status == "superseded"
    rejected.refresh_from_db()
    assert rejected.moderation_status == "approved"


def test_a_model_without_owner_cannot_be_appealed(
    django_capture_on_commit_callbacks: Any, memory_backend: Any
) -> None:
    reject_automatically(memory_backend, QUESTION)
    with django_capture_on_commit_callbacks(execute=True):
        photo = Photo.objects.create(image=image())
    statement = StatementOfReasons.objects.get()
    assert statement.owner is None
    assert appeals.is_owner(photo, user("someone")) is False


def test_appeal_page(rejected: Any, client: Any) -> None:
    url = f"/cloudinary-analysis/appeal/tests.ownedphoto/{rejected.pk}/"
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(user("stranger"))
    assert client.get(url).status_code == 404
    client.force_login(rejected.owner)
    page = client.get(url)
    assert page.status_code == 200
    assert QUESTION in page.content.decode() and b'name="note"' in page.content
    posted = client.post(url, {"note": "mine"})
    assert posted.status_code == 200 and b'name="note"' not in posted.content
    assert Appeal.objects.get().note == "mine"
    assert client.post(url, {"note": "again"}).status_code == 400
    for bad in ("auth.user/1", "tests.ownedphoto/x"):
        assert client.get(f"/cloudinary-analysis/appeal/{bad}/").status_code == 404


# A reviewer's actions in any order: at most one appeal per decision, at most
# one open at a time, and an open appeal always means the object is in review.
ACTIONS = st.lists(
    st.sampled_from(["appeal", "approve", "reject", "release"]), max_size=8
)


@hsettings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(actions=ACTIONS)
def test_appeal_states(
    actions: list[str], rejected: Any, django_capture_on_commit_callbacks: Any
) -> None:
    owner, reviewer = rejected.owner, None
    [first] = ModerationDecision.objects.for_object(rejected)
    for action in actions:
        with django_capture_on_commit_callbacks(execute=True):
            if action == "appeal":
                with contextlib.suppress(appeals.AppealError):
                    appeals.open_appeal(rejected, owner, "")
            elif action == "release":
                services.release(rejected, reviewer)
            else:
                getattr(services, action)(rejected, reviewer)
        rejected.refresh_from_db()
        open_ = Appeal.objects.filter(status="open")
        assert open_.count() <= 1
        if open_.exists():
            assert rejected.moderation_status == "review"
        for appeal in Appeal.objects.exclude(status="open"):
            assert appeal.closing_decision is not None
            assert appeal.closed_at is not None
    # Back to the single automatic rejection for the next example.
    Appeal.objects.all().delete()
    ModerationDecision.objects.for_object(rejected).filter(pk__gt=first.pk).delete()
    OwnedPhoto.objects.filter(pk=rejected.pk).update(moderation_status="rejected")
