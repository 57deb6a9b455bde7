"""``AnalyzedMediaAdmin`` on a site's ModelAdmins (admin/mixin.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib import admin
from django.test import Client

from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
    MediaTag,
    ModerationDecision,
    ModerationStatus,
)
from tests.models import Article, Photo
from tests.support.admin import (
    action_choices,
    bulk_media,
    changelist,
    confirm_action,
    messages_of,
    queries_per_page_size,
    rows_of,
    run_action,
)

pytestmark = pytest.mark.django_db

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
        analysis_type="lvis",
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
    assert (decision.status, decision.decided_by_kind, decision.previous_status) == (
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
