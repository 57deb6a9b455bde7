"""Helpers and fixtures of the admin tests (one test module per admin module)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from html.parser import HTMLParser
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
    MediaTag,
    ModerationDecision,
    ModerationStatus,
)
from tests.models import Article, Photo, SlugPhoto, UUIDPhoto

QUESTION = "Does the image contain violence?"
QUEUE_URL = "admin:cloudinary_analysis_moderationdecision_changelist"


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
            analysis_type=a.analysis_type,
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
            decided_by_kind=kind,
            reasons=[{"rule": "question_unknown", "question": QUESTION}],
        )
        for obj in created
        for status, kind in (
            (ModerationStatus.PENDING, ModerationDecision.DecidedByKind.SYSTEM),
            (obj.moderation_status, ModerationDecision.DecidedByKind.AUTO),
        )
    )
    return created


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
