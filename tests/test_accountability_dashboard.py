"""The accountability dashboard: its numbers, constant queries, the page."""

from __future__ import annotations

from datetime import timedelta
from itertools import count
from typing import Any

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from django_cloudinary_analysis.accountability import charts, dashboard, summaries
from django_cloudinary_analysis.accountability.models import DashboardDay
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
    # Backdated through save(): the dashboard's summaries see the change.
    decision.decided_at = (
        NOW - timedelta(days=days_ago) + timedelta(seconds=next(_tick))
    )
    decision.save(update_fields=["decided_at"])
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
    with CaptureQueriesContext(connection) as small_fill:
        dashboard.build(owned_filters())  # summarises the past days
    with CaptureQueriesContext(connection) as small:
        dashboard.build(owned_filters())
    many(100)  # changes the same days
    with CaptureQueriesContext(connection) as large_fill:
        dashboard.build(owned_filters())
    with CaptureQueriesContext(connection) as large:
        board = dashboard.build(owned_filters())
    assert sum(board.decisions_by_kind.values()) == 110 + 4 + 34
    # 8, a savepoint (in tests) and the JIT switch (PostgreSQL)
    assert len(small) == len(large) <= 11
    assert len(small_fill) == len(large_fill) <= 22


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


# -- the figures equal a direct reading of the raw rows ---------------------------


def reference(filters: dashboard.Filters) -> dict[str, Any]:
    """The decisions' figures computed in Python from every raw row."""
    ordered = list(ModerationDecision.objects.order_by("decided_at", "pk"))
    steps = set(
        Appeal.objects.exclude(review_decision=None).values_list(
            "review_decision_id", flat=True
        )
    )
    history: dict[tuple[int, str], list[ModerationDecision]] = {}
    for d in ordered:
        history.setdefault((d.content_type_id, d.object_id), []).append(d)
    ct = filters.content_type_id
    days: dict[tuple[str, Any], int] = {}
    kinds: dict[str, int] = {}
    rules: dict[tuple[str, str, str, str], list[int]] = {}
    for d in ordered:
        if ct is not None and d.content_type_id != ct:
            continue
        if not filters.since <= d.decided_at <= filters.until:
            continue
        key = (d.status, timezone.localdate(d.decided_at))
        days[key] = days.get(key, 0) + 1
        kinds[d.decided_by_kind] = kinds.get(d.decided_by_kind, 0) + 1
        if d.decided_by_kind != "auto" or d.status not in ("approved", "rejected"):
            continue
        first = d.reasons[0] if d.reasons else {}
        detail = first["question"] if "question" in first else first.get("label", "")
        ground = (first.get("type", ""), first.get("rule", ""), detail, d.status)
        later = history[(d.content_type_id, d.object_id)]
        following = [n for n in later[later.index(d) + 1 :] if n.pk not in steps]
        judged = bool(following) and following[0].decided_by_kind == "human"
        changed = judged and following[0].status != d.status
        counts = rules.setdefault(ground, [0, 0, 0])
        counts[0] += 1
        counts[1] += judged
        counts[2] += changed
    queued = [
        h[-1]
        for h in history.values()
        if h[-1].status in ("pending", "review")
        and (ct is None or h[-1].content_type_id == ct)
    ]
    return {
        "days": days,
        "kinds": kinds,
        "rules": {k: tuple(v) for k, v in rules.items()},
        "queue": (len(queued), min((d.decided_at for d in queued), default=None)),
    }


def shown(board: dashboard.Dashboard) -> dict[str, Any]:
    """The same figures as the dashboard gives them."""
    return {
        "days": {
            (status, day): n
            for status, series in board.decisions_by_day.items()
            for day, n in zip(board.days, series, strict=True)
            if n
        },
        "kinds": board.decisions_by_kind,
        "rules": {
            (r["g_type"], r["g_rule"], r["g_detail"], r["status"]): (
                r["total"],
                r["reviewed"],
                r["overturned"],
            )
            for r in board.overturn_by_rule
        },
        "queue": (board.queue_size, board.queue_oldest),
    }


OBJECTS = st.sampled_from(["A", "B"])
MODELS = st.sampled_from([OwnedPhoto, Photo])
REASONS = st.sampled_from([[Q1], [WEAPON], [CLEAR], [{"rule": "human"}], []])
STEPS = st.one_of(
    st.tuples(
        st.just("decide"),
        OBJECTS,
        MODELS,
        st.sampled_from(["approved", "rejected", "review", "pending"]),
        st.sampled_from(["auto", "human", "system"]),
        REASONS,
        st.integers(0, 6),
    ),
    st.tuples(st.just("appeal"), OBJECTS, MODELS, st.integers(0, 6)),
    st.tuples(st.just("delete"), OBJECTS, MODELS),
    st.tuples(st.just("withdraw"), OBJECTS, MODELS),
    st.tuples(
        st.just("look"),
        st.integers(0, 8),
        st.integers(0, 8),
        st.sampled_from([None, OwnedPhoto, Photo]),
        st.booleans(),
    ),
)


def look(since_days: int, until_days: int, model: Any, whole_days: bool) -> None:
    """Build the dashboard for a period and compare it with the raw rows."""
    a, b = sorted((since_days, until_days))
    ct = None if model is None else ContentType.objects.get_for_model(model).pk
    if whole_days:  # as the page asks: local midnight to the end of a day
        today = timezone.localdate()
        filters = dashboard.Filters(
            summaries.day_start(today - timedelta(days=b)),
            summaries.day_start(today - timedelta(days=a - 1)) - timedelta.resolution,
            ct,
        )
    else:
        filters = dashboard.Filters(
            NOW - timedelta(days=b, hours=5), NOW - timedelta(days=a), ct
        )
    assert shown(dashboard.build(filters)) == reference(filters)


@hsettings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(STEPS, max_size=12))
def test_figures_equal_the_raw_rows(steps: list[tuple[Any, ...]]) -> None:
    """Whatever is written, backdated, appealed or deleted between two looks."""
    with transaction.atomic():
        for step in steps:
            kind, *args = step
            if kind == "decide":
                obj, model, status, kind, reasons, days_ago = args
                decide(obj, status, kind, reasons, days_ago=days_ago, model=model)
            elif kind == "appeal":
                obj, model, days_ago = args
                ct = ContentType.objects.get_for_model(model)
                current = ModerationDecision.objects.filter(
                    content_type=ct, object_id=obj
                ).first()
                if current is None or hasattr(current, "appeal"):
                    continue
                step_decision = decide(
                    obj, "review", "human", days_ago=days_ago, model=model
                )
                Appeal.objects.create(
                    decision=current,
                    content_type=ct,
                    object_id=obj,
                    review_decision=step_decision,
                )
            elif kind == "withdraw":  # the review step counts again
                obj, model = args
                Appeal.objects.filter(
                    content_type=ContentType.objects.get_for_model(model),
                    object_id=obj,
                ).delete()
            elif kind == "delete":  # as when the object itself is deleted
                obj, model = args
                ModerationDecision.objects.filter(
                    content_type=ContentType.objects.get_for_model(model),
                    object_id=obj,
                ).delete()
            else:
                look(*args)
                continue
            look(0, 8, None, True)  # after every write
        look(1, 3, OwnedPhoto, False)
        with timezone.override("Asia/Kolkata"):  # no summaries: all read live
            look(0, 8, None, True)
        transaction.set_rollback(True)


def test_bypassing_writes_need_forget() -> None:
    decide("A", "rejected", "auto", [Q1], days_ago=3)
    filters = owned_filters()
    assert shown(dashboard.build(filters)) == reference(filters)
    ModerationDecision.objects.update(status="approved")  # no model signals
    assert shown(dashboard.build(filters)) != reference(filters)
    summaries.forget()
    assert shown(dashboard.build(filters)) == reference(filters)


def test_summarised_days_follow_later_changes() -> None:
    def check() -> None:
        look(0, 8, None, True)
        look(2, 5, OwnedPhoto, True)

    rejected = decide("A", "rejected", "auto", [Q1], days_ago=4)
    decide("B", "review", "auto", [], days_ago=5)
    check()  # days 2 to 8 ago are summarised now
    step = decide("A", "review", "human", days_ago=3)
    appeal = Appeal.objects.create(
        decision=rejected,
        content_type=ContentType.objects.get_for_model(OwnedPhoto),
        object_id="A",
        review_decision=step,
    )
    decide("A", "rejected", "human", days_ago=3)  # the appeal is upheld
    check()
    appeal.delete()  # withdrawn: its review step is the person's review now
    check()
    decide("B", "approved", "human", days_ago=0)  # B leaves the queue today
    check()
    ModerationDecision.objects.filter(object_id="A").delete()  # object deleted
    check()


def test_partial_days_of_a_summarised_day() -> None:
    decide("A", "review", "auto", [Q1], days_ago=3)
    look(0, 8, None, True)  # summarises day 3
    look(3, 3, None, False)  # a few hours of it, read live: queued once


def test_summarise_command() -> None:
    from io import StringIO

    from django.core.management import call_command

    decide("A", "rejected", "auto", [Q1], days_ago=3)
    out = StringIO()
    call_command("summarise_decisions", stdout=out)
    # 3 and 2 days ago (yesterday and today are read live)
    assert out.getvalue().startswith("2 day(s) summed")
    call_command("summarise_decisions", stdout=out)
    assert "\n0 day(s) summed" in out.getvalue()
    ModerationDecision.objects.update(status="approved")  # no model signals
    call_command("summarise_decisions", "--rebuild", stdout=out)
    filters = owned_filters()
    assert shown(dashboard.build(filters)) == reference(filters)


def test_a_write_during_the_summing_is_not_lost(monkeypatch: Any) -> None:
    decide("A", "rejected", "auto", [Q1], days_ago=3)
    real = summaries.aggregate

    def racing(where: Any, period: Any = None, tz: Any = None) -> Any:
        rows = real(where, period, tz)
        if period is None:  # summing the past days: a reviewer answers meanwhile
            decide("A", "approved", "human", [{"rule": "human"}], days_ago=0)
        return rows

    monkeypatch.setattr(summaries, "aggregate", racing)
    look(0, 8, None, True)  # day 3 is read live: its sum missed the answer
    day = DashboardDay.objects.get(day=timezone.localdate(NOW - timedelta(days=3)))
    assert day.checked != day.version
    monkeypatch.undo()
    look(0, 8, None, True)  # summed again
    day.refresh_from_db()
    assert day.checked == day.version
