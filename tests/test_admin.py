"""The admin: read-only result lists, the review queue and the mixin's actions.

Every action goes through a real request with the test client; permissions
are checked with staff users holding only the permissions a test names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from html.parser import HTMLParser
from typing import Any

import django
import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_cloudinary_analysis import services
from django_cloudinary_analysis.admin import describe_reason
from django_cloudinary_analysis.exceptions import AnalysisError
from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
    MediaTag,
    ModerationDecision,
    ModerationStatus,
)
from tests.models import Article, Photo, SlugPhoto, UUIDPhoto

pytestmark = pytest.mark.django_db

QUESTION = "Does the image contain violence?"
QUEUE_URL = "admin:cloudinary_analysis_moderationdecision_changelist"


# -- helpers --------------------------------------------------------------------


def changelist(model: type) -> str:
    """The admin changelist URL of ``model``."""
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")


def change_url(obj: Any) -> str:
    """The admin change URL of ``obj``."""
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])


def review_url(obj: Any) -> str:
    """The review page of ``obj``."""
    ct = ContentType.objects.get_for_model(obj)
    return reverse(
        "admin:cloudinary_analysis_moderationdecision_review", args=[ct.pk, obj.pk]
    )


def action_choices(response: Any) -> set[str]:
    """The action names a changelist offers."""
    form = response.context["action_form"]
    if form is None:  # no action at all for this user
        return set()
    return {value for value, _label in form.fields["action"].choices if value}


def run_action(
    client: Client, url: str, action: str, pks: Iterable[Any], **data: Any
) -> Any:
    """Submit a changelist action for ``pks`` (the first step of the form)."""
    payload = {
        "action": action,
        "_selected_action": [str(pk) for pk in pks],
        "index": "0",
        **data,
    }
    return client.post(url, payload)


def confirm_action(
    client: Client, url: str, action: str, pks: Iterable[Any], **data: Any
) -> Any:
    """Submit an action's intermediate page."""
    payload = {
        "action": action,
        "_selected_action": [str(pk) for pk in pks],
        "post": "yes",
        **data,
    }
    return client.post(url, payload)


def messages_of(response: Any) -> list[str]:
    """The texts of the messages a response carries (after redirects)."""
    return [str(m) for m in response.context["messages"]] if response.context else []


def count_queries(client: Client, url: str) -> tuple[int, Any]:
    """Load ``url`` and return the number of queries it ran."""
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return len(ctx.captured_queries), response


def rows_of(response: Any) -> list[Any]:
    """The objects on a changelist page."""
    return list(response.context["cl"].result_list)


class FormInputs(HTMLParser):
    """Collect the successful controls of the admin change form."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, list[str]] = {}
        self._in_form = False
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("id", "").endswith("_form"):
            self._in_form = True
        if not self._in_form:
            return
        if tag == "input" and a.get("name"):
            if a.get("type") in ("submit", "button", "file"):
                return
            if a.get("type") == "checkbox" and "checked" not in a:
                return
            self.data.setdefault(a["name"], []).append(a.get("value", ""))
        elif tag == "textarea" and a.get("name"):
            self._textarea = a["name"]
            self.data.setdefault(self._textarea, []).append("")

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.data[self._textarea][-1] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        if tag == "form":
            self._in_form = False


@pytest.fixture
def staff_client(db: Any) -> Callable[..., Client]:
    """A client logged in as a staff user holding exactly ``perms``."""
    count = 0

    def make(*perms: str) -> Client:
        nonlocal count
        count += 1
        user = get_user_model().objects.create_user(
            f"editor{count}", password="pw", is_staff=True
        )
        for perm in perms:
            app_label, codename = perm.split(".")
            user.user_permissions.add(
                Permission.objects.get(
                    content_type__app_label=app_label, codename=codename
                )
            )
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def uploaded(
    django_capture_on_commit_callbacks: Any, image_file: Any, memory_backend: Any
) -> Callable[..., Any]:
    """Create an object through the real pipeline (memory backend, eager tasks).

    ``verdict="review"`` makes the moderation answer "unknown", ``"rejected"``
    answers "yes", anything else "no".
    """
    answers = {"review": "unknown", "rejected": "yes"}
    seeds = iter(range(1, 1000))

    def make(model: type = Photo, verdict: str = "review", **fields: Any) -> Any:
        memory_backend.set_result(
            "ai_vision_moderation",
            {
                "responses": [
                    {"prompt": QUESTION, "value": answers.get(verdict, "no")}
                ],
                "model_version": 1,
            },
        )
        field = "cover" if model is Article else "image"
        # A new seed per object: equal bytes would reuse the first result.
        fields.setdefault(
            field, image_file(f"{model.__name__.lower()}.png", seed=next(seeds))
        )
        with django_capture_on_commit_callbacks(execute=True):
            obj = model.objects.create(**fields)
        obj.refresh_from_db()
        return obj

    return make


def bulk_media(model: type, n: int, start: int = 0) -> list[Any]:
    """``n`` objects with analyses, tags and two decisions each, without the
    pipeline (bulk inserts keep the 100-row fixtures fast)."""
    if model is SlugPhoto:
        objs = [model(slug=f"s-{start + i}", image=f"slug/{i}.png") for i in range(n)]
    else:
        objs = [model(image=f"bulk/{start + i}.png") for i in range(n)]
    for i, obj in enumerate(objs):
        obj.moderation_status = (
            ModerationStatus.REVIEW if i % 2 else ModerationStatus.APPROVED
        )
    created = model.objects.bulk_create(objs)
    ct = ContentType.objects.get_for_model(model)
    analyses = Analysis.objects.bulk_create(
        Analysis(
            content_type=ct,
            object_id=str(obj.pk),
            field_name="image",
            file_name=obj.image.name,
            analysis_type=atype,
            params_hash="0" * 64,
            backend="memory",
            status=AnalysisStatus.SUCCEEDED,
            result={"answers": {}},
            raw={"data": {}},
        )
        for obj in created
        for atype in ("google_tagging", "ai_vision_moderation")
    )
    MediaTag.objects.bulk_create(
        MediaTag(
            analysis=a,
            content_type=ct,
            object_id=a.object_id,
            field_name="image",
            name=f"tag-{j}",
            label=f"Tag {j}",
            confidence=1 - j / 10,
            source=a.analysis_type,
        )
        for a in analyses
        if a.analysis_type == "google_tagging"
        for j in range(8)
    )
    ModerationDecision.objects.bulk_create(
        ModerationDecision(
            content_type=ct,
            object_id=str(obj.pk),
            status=status,
            source=source,
            reasons=[{"rule": "question_unknown", "question": QUESTION}],
        )
        for obj in created
        for status, source in (
            (ModerationStatus.PENDING, ModerationDecision.Source.SYSTEM),
            (obj.moderation_status, ModerationDecision.Source.AUTO),
        )
    )
    return created


# -- the Analysis admin ------------------------------------------------------------


def test_analysis_list_shows_status_reason_and_filters(
    admin_client: Client, uploaded: Any, memory_backend: Any
) -> None:
    memory_backend.set_error(
        "image_quality", AnalysisError("the image is too small <b>", code="bad")
    )
    photo = uploaded(Photo, "review")
    response = admin_client.get(changelist(Analysis))
    assert response.status_code == 200
    assert len(rows_of(response)) == 3
    content = response.content.decode()
    assert "the image is too small &lt;b&gt;" in content
    assert 'dca-badge--failed"' in content
    assert str(photo) in content  # the object column links the photo
    assert change_url(photo) in content

    failed = admin_client.get(changelist(Analysis), {"status__exact": "failed"})
    assert [a.analysis_type for a in rows_of(failed)] == ["image_quality"]
    by_type = admin_client.get(
        changelist(Analysis), {"analysis_type__exact": "google_tagging"}
    )
    assert [a.analysis_type for a in rows_of(by_type)] == ["google_tagging"]
    ct = ContentType.objects.get_for_model(Photo)
    by_ct = admin_client.get(changelist(Analysis), {"content_type__id__exact": ct.pk})
    assert len(rows_of(by_ct)) == 3
    by_backend = admin_client.get(changelist(Analysis), {"backend": "memory"})
    assert len(rows_of(by_backend)) == 3


def test_analysis_search_by_object_request_and_task_id(admin_client: Client) -> None:
    photo, _other = bulk_media(Photo, 2)
    mine = Analysis.objects.filter(object_id=str(photo.pk))
    first = mine.first()
    Analysis.objects.filter(pk=first.pk).update(
        request_id="req-abc123", remote_task_id="task-" + "x" * 300
    )
    url = changelist(Analysis)
    found = rows_of(admin_client.get(url, {"q": str(photo.pk)}))
    assert {a.object_id for a in found} == {str(photo.pk)}
    assert [a.pk for a in rows_of(admin_client.get(url, {"q": "req-abc"}))] == [
        first.pk
    ]
    by_task = rows_of(admin_client.get(url, {"q": "task-" + "x" * 300}))
    assert [a.pk for a in by_task] == [first.pk]


def test_analysis_detail_is_read_only_and_escapes_json(admin_client: Client) -> None:
    (photo,) = bulk_media(Photo, 1)
    analysis = Analysis.objects.filter(object_id=str(photo.pk)).first()
    analysis.raw = {"data": {"caption": "<script>alert('raw')</script>"}}
    analysis.result = {"caption": "<script>alert('result')</script>"}
    analysis.error_message = "<img src=x onerror=alert(1)>"
    analysis.save()
    url = change_url(analysis)
    response = admin_client.get(url)
    assert response.status_code == 200
    content = response.content.decode()
    assert "<script>alert(" not in content
    assert "&lt;script&gt;alert(&#x27;raw&#x27;)&lt;/script&gt;" in content
    assert "&lt;script&gt;alert(&#x27;result&#x27;)&lt;/script&gt;" in content
    assert "<img src=x" not in content
    assert '<pre class="dca-json">' in content
    assert 'name="_save"' not in content  # view only
    # Nothing can be written: change, add and delete are refused.
    assert admin_client.post(url, {"status": "failed"}).status_code == 403
    assert (
        admin_client.get(reverse("admin:cloudinary_analysis_analysis_add")).status_code
        == 403
    )
    delete = reverse("admin:cloudinary_analysis_analysis_delete", args=[analysis.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert Analysis.objects.filter(pk=analysis.pk).exists()
    assert "delete_selected" not in action_choices(
        admin_client.get(changelist(Analysis))
    )


def test_rerun_action_forces_the_selected_analyses(
    admin_client: Client,
    uploaded: Any,
    memory_backend: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    photo = uploaded(Photo, "approved")
    uuid_photo = uploaded(UUIDPhoto, "approved")
    picked = [
        Analysis.objects.for_object(photo).get(analysis_type="google_tagging"),
        Analysis.objects.for_object(uuid_photo).get(analysis_type="google_tagging"),
    ]
    memory_backend.reset()
    before = Analysis.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(
            admin_client,
            changelist(Analysis),
            "rerun_selected",
            [a.pk for a in picked],
        )
    assert response.status_code == 302
    assert Analysis.objects.count() == before + 2
    new = Analysis.objects.filter(pk__gt=max(a.pk for a in Analysis.objects.all()) - 2)
    assert {(a.object_id, a.analysis_type, a.status) for a in new} == {
        (str(photo.pk), "google_tagging", AnalysisStatus.SUCCEEDED),
        (str(uuid_photo.pk), "google_tagging", AnalysisStatus.SUCCEEDED),
    }
    assert all(not a.allow_reuse for a in new)  # forced: never copied
    assert [c.analysis_type for c in memory_backend.calls] == ["google_tagging"] * 2
    assert "Queued 2 analyses." in messages_of(admin_client.get(changelist(Analysis)))


def test_rerun_action_reports_deleted_objects_and_app_errors(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    (photo,) = bulk_media(Photo, 1)
    live = Analysis.objects.filter(object_id=str(photo.pk)).first()
    # An analysis whose object disappeared without the delete receivers.
    ghost = Analysis.objects.create(
        content_type=live.content_type,
        object_id="999999",
        field_name="image",
        analysis_type="google_tagging",
        params_hash="0" * 64,
    )

    def boom(*args: Any, **kwargs: Any) -> list[Analysis]:
        raise AnalysisError("the backend is not configured")

    monkeypatch.setattr(services, "schedule", boom)
    response = run_action(
        admin_client,
        changelist(Analysis),
        "rerun_selected",
        [ghost.pk, live.pk],
    )
    assert response.status_code == 302
    texts = messages_of(admin_client.get(changelist(Analysis)))
    assert any(
        "could not be re-analysed: the backend is not configured" in t for t in texts
    )
    assert any("1 analysis belongs to a deleted object" in t for t in texts)


def test_rerun_action_needs_the_reanalyze_permission(
    staff_client: Callable[..., Client], uploaded: Any
) -> None:
    photo = uploaded(Photo, "approved")
    viewer = staff_client("cloudinary_analysis.view_analysis")
    response = viewer.get(changelist(Analysis))
    assert response.status_code == 200
    assert "rerun_selected" not in action_choices(response)
    before = Analysis.objects.count()
    run_action(
        viewer,
        changelist(Analysis),
        "rerun_selected",
        Analysis.objects.for_object(photo).values_list("pk", flat=True),
    )
    assert Analysis.objects.count() == before

    rerunner = staff_client(
        "cloudinary_analysis.view_analysis", "cloudinary_analysis.reanalyze_media"
    )
    assert "rerun_selected" in action_choices(rerunner.get(changelist(Analysis)))


# -- the MediaTag admin ------------------------------------------------------------


def test_tag_list_filters_by_source_and_searches_names(admin_client: Client) -> None:
    (photo,) = bulk_media(Photo, 1)
    analysis = Analysis.objects.filter(
        object_id=str(photo.pk), analysis_type="ai_vision_moderation"
    ).first()
    MediaTag.objects.create(
        analysis=analysis,
        content_type=analysis.content_type,
        object_id=analysis.object_id,
        field_name="image",
        name="violence",
        label="Violence",
        confidence=None,
        source="ai_vision_moderation",
    )
    url = changelist(MediaTag)
    response = admin_client.get(url, {"source": "ai_vision_moderation"})
    assert [t.name for t in rows_of(response)] == ["violence"]
    assert [t.name for t in rows_of(admin_client.get(url, {"q": "tag-3"}))] == ["tag-3"]
    assert len(rows_of(admin_client.get(url))) == 9
    tag = MediaTag.objects.get(name="violence")
    detail = admin_client.get(change_url(tag))
    assert detail.status_code == 200
    assert admin_client.post(change_url(tag), {"name": "x"}).status_code == 403


# -- the review queue ------------------------------------------------------------


def test_queue_lists_current_verdicts_open_ones_first(
    admin_client: Client, uploaded: Any
) -> None:
    approved = uploaded(Photo, "approved", title="fine")
    review = uploaded(UUIDPhoto, "review")
    rejected = uploaded(SlugPhoto, "rejected", slug="bad")
    services.release(review, note="looked again")  # a second verdict in its trail
    response = admin_client.get(reverse(QUEUE_URL))
    assert response.status_code == 200
    rows = rows_of(response)
    # One row per object (its newest decision), "needs review" first.
    assert (rows[0].object_id, rows[0].status) == (
        str(review.pk),
        ModerationStatus.REVIEW,
    )
    assert {r.object_id for r in rows} == {
        str(approved.pk),
        str(review.pk),
        str(rejected.pk),
    }
    content = response.content.decode()
    assert response.context["title"] == "Review queue"
    assert 'loading="lazy"' in content
    assert "unsure: Does the image contain violence? (image)" in content
    assert review_url(review) in content
    assert "2 decisions" in content  # review, then review again on release
    # The history trail is markup, not escaped markup.
    assert "&lt;span" not in content
    trail = re.search(
        r'<td class="field-history_display">(.*?)</td>', content, re.S
    ).group(1)
    assert trail.count('class="dca-history-item"') == 2
    assert trail.count("dca-badge--review") == 2

    history = admin_client.get(reverse(QUEUE_URL), {"view": "history"})
    assert history.context["title"] == "Moderation history"
    assert len(rows_of(history)) == ModerationDecision.objects.count() == 4

    if django.VERSION >= (5, 0):  # facet counts are new in Django 5.0
        with_counts = admin_client.get(reverse(QUEUE_URL), {"_facets": "True"})
        assert with_counts.status_code == 200
        assert len(rows_of(with_counts)) == 3

    only_review = admin_client.get(reverse(QUEUE_URL), {"status__exact": "review"})
    assert [r.object_id for r in rows_of(only_review)] == [str(review.pk)]


def test_queue_escapes_reasons(admin_client: Client) -> None:
    (photo,) = bulk_media(Photo, 1)
    ModerationDecision.objects.create(
        content_type=ContentType.objects.get_for_model(Photo),
        object_id=str(photo.pk),
        status=ModerationStatus.REVIEW,
        reasons=[{"rule": "question_unknown", "question": "<script>x()</script>"}],
    )
    content = admin_client.get(reverse(QUEUE_URL)).content.decode()
    assert "<script>x()" not in content
    assert "unsure: &lt;script&gt;x()&lt;/script&gt;" in content


def test_review_page_rejects_with_a_note(admin_client: Client, uploaded: Any) -> None:
    photo = uploaded(Photo, "review", title="beach")
    url = review_url(photo)
    page = admin_client.get(url)
    assert page.status_code == 200
    content = page.content.decode()
    assert "beach" in content
    assert 'value="reject"' in content and 'value="approve"' in content
    assert "unsure: Does the image contain violence?" in content

    response = admin_client.post(url, {"verdict": "reject", "note": "shows a weapon"})
    assert response.status_code == 302
    assert response.url.startswith(reverse(QUEUE_URL))
    photo.refresh_from_db()
    assert photo.moderation_status == ModerationStatus.REJECTED
    decision = ModerationDecision.objects.for_object(photo).first()
    assert decision.source == ModerationDecision.Source.HUMAN
    assert decision.note == "shows a weapon"
    assert decision.decided_by.username == "admin"
    assert "beach is now rejected." in messages_of(admin_client.get(response.url))

    # A human verdict can be released back to the policy.
    admin_client.post(url, {"verdict": "release", "note": ""})
    photo.refresh_from_db()
    assert photo.moderation_status == ModerationStatus.REVIEW
    assert ModerationDecision.objects.for_object(photo).first().source == "auto"


def test_review_page_works_for_uuid_and_string_keys(
    admin_client: Client, uploaded: Any
) -> None:
    for obj in (
        uploaded(UUIDPhoto, "review"),
        uploaded(SlugPhoto, "review", slug="a-b"),
    ):
        response = admin_client.post(review_url(obj), {"verdict": "approve"})
        assert response.status_code == 302
        obj.refresh_from_db()
        assert obj.moderation_status == ModerationStatus.APPROVED


def test_review_page_needs_the_review_permission(
    staff_client: Callable[..., Client], uploaded: Any
) -> None:
    photo = uploaded(Photo, "review")
    viewer = staff_client("cloudinary_analysis.view_moderationdecision")
    page = viewer.get(review_url(photo))
    assert page.status_code == 200
    assert 'value="reject"' not in page.content.decode()
    response = viewer.post(review_url(photo), {"verdict": "reject", "note": "no"})
    assert response.status_code == 403
    photo.refresh_from_db()
    assert photo.moderation_status == ModerationStatus.REVIEW
    assert staff_client().get(review_url(photo)).status_code == 403


def test_review_page_refuses_unmoderated_models_and_missing_objects(
    admin_client: Client, uploaded: Any
) -> None:
    photo = uploaded(Photo, "review")
    user_ct = ContentType.objects.get_for_model(get_user_model())
    url = reverse(
        "admin:cloudinary_analysis_moderationdecision_review", args=[user_ct.pk, 1]
    )
    assert admin_client.get(url).status_code == 404
    ct = ContentType.objects.get_for_model(Photo)
    for missing in (photo.pk + 100, "not-a-number"):
        url = reverse(
            "admin:cloudinary_analysis_moderationdecision_review", args=[ct.pk, missing]
        )
        assert admin_client.get(url).status_code == 404


def test_queue_bulk_approve_and_reject_across_models(
    admin_client: Client, uploaded: Any
) -> None:
    photo = uploaded(Photo, "review")
    uuid_photo = uploaded(UUIDPhoto, "review")
    slug_photo = uploaded(SlugPhoto, "review", slug="slug-one")
    url = reverse(QUEUE_URL)
    rows = {r.object_id: r.pk for r in rows_of(admin_client.get(url))}

    response = run_action(
        admin_client,
        url,
        "approve_selected",
        [rows[str(photo.pk)], rows[str(uuid_photo.pk)]],
    )
    assert response.status_code == 302
    assert "Approved 2 objects." in messages_of(admin_client.get(url))
    for obj in (photo, uuid_photo):
        obj.refresh_from_db()
        assert obj.moderation_status == ModerationStatus.APPROVED

    page = run_action(admin_client, url, "reject_selected", [rows[str(slug_photo.pk)]])
    assert page.status_code == 200
    assert b'name="note"' in page.content
    assert str(slug_photo).encode() in page.content
    response = confirm_action(
        admin_client,
        url,
        "reject_selected",
        [rows[str(slug_photo.pk)]],
        note="not ours",
    )
    assert response.status_code == 302
    slug_photo.refresh_from_db()
    assert slug_photo.moderation_status == ModerationStatus.REJECTED
    assert ModerationDecision.objects.for_object(slug_photo).first().note == "not ours"


def test_queue_actions_need_the_review_permission(
    staff_client: Callable[..., Client], uploaded: Any
) -> None:
    photo = uploaded(Photo, "review")
    url = reverse(QUEUE_URL)
    viewer = staff_client("cloudinary_analysis.view_moderationdecision")
    response = viewer.get(url)
    assert not action_choices(response) & {"approve_selected", "reject_selected"}
    decision = rows_of(response)[0]
    run_action(viewer, url, "approve_selected", [decision.pk])
    confirm_action(viewer, url, "reject_selected", [decision.pk], note="x")
    photo.refresh_from_db()
    assert photo.moderation_status == ModerationStatus.REVIEW

    reviewer = staff_client(
        "cloudinary_analysis.view_moderationdecision",
        "cloudinary_analysis.review_media",
    )
    assert {"approve_selected", "reject_selected"} <= action_choices(reviewer.get(url))


def test_decisions_are_read_only(admin_client: Client, uploaded: Any) -> None:
    photo = uploaded(Photo, "review")
    decision = ModerationDecision.objects.for_object(photo).first()
    page = admin_client.get(change_url(decision))
    assert page.status_code == 200
    assert review_url(photo) in page.content.decode()
    assert admin_client.post(change_url(decision), {"note": "x"}).status_code == 403
    delete = reverse(
        "admin:cloudinary_analysis_moderationdecision_delete", args=[decision.pk]
    )
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403


# -- the mixin on the site's ModelAdmins ----------------------------------------------


def test_mixin_columns_and_filter(admin_client: Client, uploaded: Any) -> None:
    review = uploaded(Photo, "review", title="in review")
    approved = uploaded(Photo, "approved", title="approved one")
    response = admin_client.get(changelist(Photo))
    assert response.status_code == 200
    content = response.content.decode()
    assert f'src="{review.image.url}"' in content
    assert 'loading="lazy"' in content
    assert '<span class="dca-badge dca-badge--review">needs review</span>' in content
    assert '<span class="dca-badge dca-badge--approved">approved</span>' in content
    assert '<span class="dca-tag" title="0.90">photograph</span>' in content
    assert "moderation_status__exact=review" in content  # the list filter
    filtered = admin_client.get(
        changelist(Photo), {"moderation_status__exact": "review"}
    )
    assert [p.pk for p in rows_of(filtered)] == [review.pk]
    assert approved.pk not in [p.pk for p in rows_of(filtered)]


def test_mixin_top_tags_are_the_most_confident_distinct_names(
    admin_client: Client,
) -> None:
    (photo,) = bulk_media(Photo, 1)
    first = MediaTag.objects.get(object_id=str(photo.pk), name="tag-0")
    MediaTag.objects.create(  # the same name from another analysis
        analysis=first.analysis,
        content_type=first.content_type,
        object_id=first.object_id,
        field_name="image",
        name="tag-0",
        label="Tag 0",
        confidence=0.99,
        source="lvis",
    )
    response = admin_client.get(changelist(Photo))
    tags = re.findall(
        r'<span class="dca-tag" title="[^"]*">([^<]+)</span>', response.content.decode()
    )
    assert tags == ["Tag 0", "Tag 1", "Tag 2", "Tag 3", "Tag 4"]


def test_mixin_thumbnail_url_is_escaped(admin_client: Client) -> None:
    Photo.objects.create(image='bulk/a"><script>x()</script>.png')
    content = admin_client.get(changelist(Photo)).content.decode()
    assert "<script>x()" not in content
    assert "&quot;&gt;&lt;script&gt;" in content or "%22%3E%3Cscript%3E" in content


def test_mixin_reanalyze_confirmation_and_submit(
    admin_client: Client,
    uploaded: Any,
    memory_backend: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    photos = [uploaded(Photo, "approved"), uploaded(Photo, "approved")]
    url = changelist(Photo)
    page = run_action(admin_client, url, "reanalyze_selected", [p.pk for p in photos])
    assert page.status_code == 200
    assert page.templates[0].name == (
        "admin/cloudinary_analysis/reanalyze_confirmation.html"
    )
    content = page.content.decode()
    for name in ("google_tagging", "ai_vision_moderation", "image_quality"):
        assert f'value="{name}"' in content
    assert 'name="force"' in content
    assert Analysis.objects.count() == 6  # nothing happens before confirming

    # Without force, analyses that succeeded are left alone.
    memory_backend.reset()
    with django_capture_on_commit_callbacks(execute=True):
        response = confirm_action(
            admin_client,
            url,
            "reanalyze_selected",
            [p.pk for p in photos],
            types=["google_tagging"],
        )
    assert response.status_code == 302
    assert Analysis.objects.count() == 6
    assert memory_backend.calls == []
    assert any("Nothing to re-run" in t for t in messages_of(admin_client.get(url)))

    with django_capture_on_commit_callbacks(execute=True):
        response = confirm_action(
            admin_client,
            url,
            "reanalyze_selected",
            [p.pk for p in photos],
            types=["google_tagging", "image_quality"],
            force="on",
        )
    assert response.status_code == 302
    assert Analysis.objects.count() == 10
    assert sorted(c.analysis_type for c in memory_backend.calls) == [
        "google_tagging",
        "google_tagging",
        "image_quality",
        "image_quality",
    ]
    assert Analysis.objects.filter(status=AnalysisStatus.SUCCEEDED).count() == 10
    assert "Queued 4 analyses of 2 objects." in messages_of(admin_client.get(url))


def test_mixin_reanalyze_requires_a_type(admin_client: Client, uploaded: Any) -> None:
    photo = uploaded(Photo, "approved")
    page = confirm_action(
        admin_client, changelist(Photo), "reanalyze_selected", [photo.pk]
    )
    assert page.status_code == 200  # the form comes back with its error
    assert page.context["form"].errors["types"]
    assert Analysis.objects.count() == 3


def test_mixin_reanalyze_offers_the_models_own_types(
    admin_client: Client, uploaded: Any
) -> None:
    article = uploaded(Article, "approved")
    page = run_action(
        admin_client, changelist(Article), "reanalyze_selected", [article.pk]
    )
    choices = dict(page.context["form"].fields["types"].choices)
    assert choices == {
        "ai_vision_moderation": "ai_vision_moderation (cover)",
        "ai_vision_tagging": "ai_vision_tagging (cover)",
        "image_quality": "image_quality (thumbnail)",
    }


def test_mixin_approve_and_reject_with_note(
    admin_client: Client, uploaded: Any
) -> None:
    first, second = uploaded(Photo, "review"), uploaded(Photo, "review")
    url = changelist(Photo)
    response = run_action(admin_client, url, "approve_selected", [first.pk])
    assert response.status_code == 302
    first.refresh_from_db()
    assert first.moderation_status == ModerationStatus.APPROVED
    decision = ModerationDecision.objects.for_object(first).first()
    assert (decision.status, decision.source, decision.previous_status) == (
        "approved",
        "human",
        "review",
    )
    assert "Approved 1 object." in messages_of(admin_client.get(url))

    page = run_action(admin_client, url, "reject_selected", [second.pk])
    assert page.status_code == 200
    assert (
        page.templates[0].name == "admin/cloudinary_analysis/reject_confirmation.html"
    )
    second.refresh_from_db()
    assert second.moderation_status == ModerationStatus.REVIEW
    response = confirm_action(
        admin_client, url, "reject_selected", [second.pk], note="blurred faces"
    )
    assert response.status_code == 302
    second.refresh_from_db()
    assert second.moderation_status == ModerationStatus.REJECTED
    decision = ModerationDecision.objects.for_object(second).first()
    assert (decision.status, decision.note) == ("rejected", "blurred faces")
    assert "Rejected 1 object." in messages_of(admin_client.get(url))


def test_mixin_actions_follow_permissions(
    staff_client: Callable[..., Client],
    uploaded: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    photo = uploaded(Photo, "review")
    url = changelist(Photo)
    ours = {"reanalyze_selected", "approve_selected", "reject_selected"}

    editor = staff_client("tests.view_photo", "tests.change_photo")
    assert not action_choices(editor.get(url)) & ours
    before = (Analysis.objects.count(), ModerationDecision.objects.count())
    with django_capture_on_commit_callbacks(execute=True):
        run_action(editor, url, "approve_selected", [photo.pk])
        confirm_action(editor, url, "reject_selected", [photo.pk], note="x")
        confirm_action(
            editor,
            url,
            "reanalyze_selected",
            [photo.pk],
            types=["google_tagging"],
            force="on",
        )
    assert (Analysis.objects.count(), ModerationDecision.objects.count()) == before
    photo.refresh_from_db()
    assert photo.moderation_status == ModerationStatus.REVIEW

    reviewer = staff_client("tests.view_photo", "cloudinary_analysis.review_media")
    assert action_choices(reviewer.get(url)) & ours == {
        "approve_selected",
        "reject_selected",
    }
    rerunner = staff_client("tests.view_photo", "cloudinary_analysis.reanalyze_media")
    assert action_choices(rerunner.get(url)) & ours == {"reanalyze_selected"}


def test_mixin_keeps_the_sites_own_actions(admin_client: Client, uploaded: Any) -> None:
    uploaded(Article, "approved")
    choices = action_choices(admin_client.get(changelist(Article)))
    assert {
        "mark_untitled",
        "delete_selected",
        "reanalyze_selected",
        "approve_selected",
        "reject_selected",
    } <= choices


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


# -- constant query counts --------------------------------------------------------


def mixed_media(n: int) -> None:
    """``n`` objects taking turns among three models (int, UUID and str keys),
    so that any page of the app's lists shows all three content types."""
    for i in range(n):
        bulk_media((Photo, UUIDPhoto, SlugPhoto)[i % 3], 1, start=i)


def queries_per_page_size(
    client: Client, model_admin: Any, url: str, monkeypatch: pytest.MonkeyPatch
) -> dict[int, int]:
    """Queries run by a full page of 10 rows and one of 100 rows."""
    counts = {}
    for size in (10, 100):
        monkeypatch.setattr(model_admin, "list_per_page", size)
        count_queries(client, url)  # warm the content type and session caches
        counts[size], response = count_queries(client, url)
        assert len(rows_of(response)) == size
    return counts


@pytest.mark.parametrize(
    ("model", "query"),
    [
        (Analysis, ""),
        (MediaTag, ""),
        (ModerationDecision, ""),
        (ModerationDecision, "?view=history"),
    ],
    ids=["analyses", "tags", "queue", "history"],
)
def test_app_changelists_run_constant_queries(
    admin_client: Client,
    monkeypatch: pytest.MonkeyPatch,
    model: type,
    query: str,
) -> None:
    mixed_media(100)  # 200 analyses, 800 tags, 100 queue rows, 200 decisions
    model_admin = admin.site._registry[model]
    counts = queries_per_page_size(
        admin_client, model_admin, changelist(model) + query, monkeypatch
    )
    assert counts[10] == counts[100], counts


def test_site_changelist_runs_constant_queries(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk_media(Photo, 100)
    model_admin = admin.site._registry[Photo]
    counts = queries_per_page_size(
        admin_client, model_admin, changelist(Photo), monkeypatch
    )
    assert counts[10] == counts[100], counts
    # Every row of the last page (100 rows) shows its five best tags.
    content = admin_client.get(changelist(Photo)).content.decode()
    assert content.count('class="dca-tag"') == 100 * 5


# -- reasons ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "text"),
    [
        (
            {"rule": "question_yes", "question": "Q?", "field": "image"},
            "answered yes: Q? (image)",
        ),
        ({"rule": "label", "label": "Gun", "confidence": 0.91}, "label Gun (0.91)"),
        (
            {
                "rule": "analysis_not_succeeded",
                "type": "t",
                "status": "failed",
                "reason": "x",
            },
            "t failed: x",
        ),
        (
            {"rule": "content_changed", "fields": ["image"], "field": "image"},
            "new content in image",
        ),
        ({"rule": "human"}, "decided by a person"),
        ({"rule": "custom", "score": 3}, "custom: score=3"),
        ("free text", "free text"),
    ],
)
def test_describe_reason(reason: Any, text: str) -> None:
    assert describe_reason(reason) == text
