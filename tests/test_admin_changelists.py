"""The read-only changelists of analyses and tags (admin/changelists.py).

Every action goes through a real request with the test client; permissions
are checked with staff users holding only the permissions a test names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse

from django_cloudinary_analysis import services
from django_cloudinary_analysis.exceptions import AnalysisError
from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
    MediaTag,
    ModerationDecision,
)
from tests.models import Photo, UUIDPhoto
from tests.support.admin import (
    action_choices,
    bulk_media,
    change_url,
    changelist,
    messages_of,
    mixed_media,
    queries_per_page_size,
    rows_of,
    run_action,
)

pytestmark = pytest.mark.django_db

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
    texts = messages_of(admin_client.get(changelist(Analysis)))
    assert "Queued 2 analyses of 2 objects." in texts


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


def test_tag_list_filters_by_analysis_type_and_searches_names(
    admin_client: Client,
) -> None:
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
        analysis_type="ai_vision_moderation",
    )
    url = changelist(MediaTag)
    response = admin_client.get(url, {"analysis_type": "ai_vision_moderation"})
    assert [t.name for t in rows_of(response)] == ["violence"]
    assert [t.name for t in rows_of(admin_client.get(url, {"q": "tag-3"}))] == ["tag-3"]
    assert len(rows_of(admin_client.get(url))) == 9
    tag = MediaTag.objects.get(name="violence")
    detail = admin_client.get(change_url(tag))
    assert detail.status_code == 200
    assert admin_client.post(change_url(tag), {"name": "x"}).status_code == 403


# -- constant query counts --------------------------------------------------------


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
