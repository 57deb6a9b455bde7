"""The accountability dashboard: its numbers, constant queries, the page."""

from __future__ import annotations

from datetime import timedelta
from itertools import count
from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_cloudinary_analysis.accountability import charts, dashboard
from django_cloudinary_analysis.models import (
    Analysis,
    Appeal,
    ModerationDecision,
    QuotaState,
)
from tests.models import OwnedPhoto, Photo
from tests.support.accountability import URLCONF, user

pytestmark = [pytest.mark.django_db, pytest.mark.urls(URLCONF)]

NOW = timezone.now().replace(microsecond=0)
Q1 = {"rule": "question_yes", "question": "Gore?", "type": "ai_vision_moderation"}
WEAPON = {"rule": "label", "label": "Weapon", "type": "google_tagging"}
CLEAR = {"rule": "all_clear", "analyses": [1]}
_tick = count()


def decide(
    obj_id: str,
    status: str,
    kind: str,
    reasons: Any = (),
    *,
    days_ago: int = 1,
    model: Any = OwnedPhoto,
    by: Any = None,
) -> ModerationDecision:
    """A decision at a known time (each one a second after the previous)."""
    decision = ModerationDecision.objects.create(
        content_type=ContentType.objects.get_for_model(model),
        object_id=obj_id,
        status=status,
        decided_by_kind=kind,
        reasons=list(reasons),
        decided_by=by,
    )
    at = NOW - timedelta(days=days_ago) + timedelta(seconds=next(_tick))
    ModerationDecision.objects.filter(pk=decision.pk).update(decided_at=at)
    decision.decided_at = at
    return decision


@pytest.fixture
def scenario() -> dict[str, Any]:
    reviewer = user("reviewer", staff=True)
    # A: automatic rejection overturned by a person
    decide("A", "rejected", "auto", [Q1], days_ago=3)
    decide("A", "approved", "human", [{"rule": "human"}], days_ago=3, by=reviewer)
    # B: automatic rejection confirmed; C: never looked at
    decide("B", "rejected", "auto", [Q1], days_ago=2)
    decide("B", "rejected", "human", [{"rule": "human"}], days_ago=2, by=reviewer)
    decide("C", "rejected", "auto", [Q1], days_ago=2)
    # D: automatic approval a person rejected
    decide("D", "approved", "auto", [CLEAR], days_ago=1)
    decide("D", "rejected", "human", [{"rule": "human"}], days_ago=1, by=reviewer)
    # E: rejection appealed (the appeal's own review step is not a judgement)
    appealed = decide("E", "rejected", "auto", [WEAPON], days_ago=1)
    step = decide("E", "review", "human", [{"rule": "human"}], days_ago=1)
    closing = decide(
        "E", "approved", "human", [{"rule": "human"}], days_ago=1, by=reviewer
    )
    Appeal.objects.create(
        decision=appealed,
        content_type=ContentType.objects.get_for_model(OwnedPhoto),
        object_id="E",
        review_decision=step,
        closing_decision=closing,
        status="overturned",
    )
    # F and G wait in the queue; H is another model's
    oldest = decide("F", "review", "auto", [], days_ago=5)
    decide("G", "pending", "system", [], days_ago=1)
    decide("H", "rejected", "auto", [Q1], days_ago=1, model=Photo)
    # API calls: 3 single, 2 retried, 2 reused
    photo_ct = ContentType.objects.get_for_model(OwnedPhoto)
    donor = None
    for n, attempts in enumerate([1, 1, 1, 2, 2]):
        donor = Analysis.objects.create(
            content_type=photo_ct,
            object_id=str(n),
            analysis_type="google_tagging",
            params_hash="x",
            status="succeeded",
            attempts=attempts,
        )
    for n in range(2):
        Analysis.objects.create(
            content_type=photo_ct,
            object_id=f"r{n}",
            analysis_type="google_tagging",
            params_hash="x",
            status="succeeded",
            attempts=1,
            reused_from=donor,
        )
    QuotaState.objects.create(feature="google_tagging", remaining=10, limit=100)
    return {"oldest": oldest}


def owned_filters(**kwargs: Any) -> dashboard.Filters:
    filters = dashboard.Filters.last_days(30, **kwargs)
    return filters


def test_numbers(scenario: dict[str, Any]) -> None:
    ct = ContentType.objects.get_for_model(OwnedPhoto).pk
    board = dashboard.build(owned_filters(content_type_id=ct))
    rules = {
        (r["g_type"], r["g_rule"], r["g_detail"], r["status"]): (
            r["total"],
            r["reviewed"],
            r["overturned"],
            r["rate"],
        )
        for r in board.overturn_by_rule
    }
    assert rules == {
        ("ai_vision_moderation", "question_yes", "Gore?", "rejected"): (3, 2, 1, 0.5),
        ("", "all_clear", "", "approved"): (1, 1, 1, 1.0),
        ("google_tagging", "label", "Weapon", "rejected"): (1, 1, 1, 1.0),
    }
    types = {
        r["g_type"]: (r["total"], r["reviewed"], r["overturned"])
        for r in board.overturn_by_type
    }
    assert types == {
        "ai_vision_moderation": (3, 2, 1),
        "": (1, 1, 1),
        "google_tagging": (1, 1, 1),
    }
    assert board.queue_size == 2
    assert board.queue_oldest == scenario["oldest"].decided_at
    assert board.appeals == {"open": 0, "overturned": 1, "upheld": 0, "superseded": 0}
    assert board.calls_total == 7 and board.saved_total == 2
    assert board.saved_by_type == {"google_tagging": 2}
    assert sum(board.decisions_by_day["rejected"]) == 6
    day = board.days.index(timezone.localdate(NOW - timedelta(days=3)))
    assert board.decisions_by_day["approved"][day] == 1
    assert board.decisions_by_kind == {"auto": 6, "human": 5, "system": 1}
    assert [q.feature for q in board.quotas] == ["google_tagging"]
    # Every model: H counts too; a period that ends before F leaves F out.
    assert dashboard.build(owned_filters()).decisions_by_kind["auto"] == 7
    narrow = dashboard.Filters(NOW - timedelta(days=2, hours=1), NOW, ct)
    assert sum(dashboard.build(narrow).decisions_by_day["rejected"]) == 5


def many(n: int) -> None:
    reviewer = user(f"r{n}", staff=True)
    for i in range(n):
        decide(
            f"{n}-{i}",
            "rejected",
            "auto",
            [Q1 if i % 2 else WEAPON],
            days_ago=1 + i % 7,
        )
        if i % 3 == 0:
            decide(f"{n}-{i}", "approved", "human", [], days_ago=1 + i % 7, by=reviewer)


def test_constant_queries() -> None:
    many(10)
    with CaptureQueriesContext(connection) as small:
        dashboard.build(owned_filters())
    many(100)
    with CaptureQueriesContext(connection) as large:
        board = dashboard.build(owned_filters())
    assert sum(board.decisions_by_kind.values()) == 110 + 4 + 34
    assert len(small) == len(large) <= 7


def test_page(scenario: dict[str, Any], client: Any) -> None:
    url = "/cloudinary-analysis/admin/dashboard/"
    assert client.get(url).status_code == 302
    client.force_login(user("boss", staff=True))
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert (
        html.count('<svg class="dca-chart"') == 5 and 'id="dca-queue-size">2<' in html
    )
    assert "ai_vision_moderation · question_yes · Gore?" in html
    assert "50% (1/2 of 4)" in html  # H, a Photo, counts too
    ct = ContentType.objects.get_for_model(Photo).pk
    page = client.get(url, {"model": ct, "since": "2000-01-01"})
    assert 'id="dca-queue-size">0<' in page.content.decode()
    assert client.get(url, {"since": "junk"}).status_code == 200  # falls back


def test_charts_escape_and_scale() -> None:
    day = timezone.localdate()
    svg = charts.stacked_bars("<T>", [day], {"a<b": [3]})
    assert "&lt;T&gt;" in svg and "a&lt;b" in svg and "<T>" not in svg
    empty = charts.hbars("none", [])
    assert empty.startswith("<svg") and 'data-series="0"' in empty
    bars = charts.hbars("rates", [("x", 0.5, "50%"), ("y", 1.0, "100%")], maximum=1.0)
    assert bars.count('class="dca-bar"') == 2
