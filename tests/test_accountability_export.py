"""Audit export: CSV and JSON Lines, streamed in chunks, command and admin."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_cloudinary_analysis import services
from django_cloudinary_analysis.accountability import appeals, export
from django_cloudinary_analysis.accountability.admin import export_csv, export_jsonl
from django_cloudinary_analysis.models import Analysis, ModerationDecision
from tests.models import OwnedPhoto
from tests.support.accountability import URLCONF, image, reject_automatically, user

pytestmark = [pytest.mark.django_db, pytest.mark.urls(URLCONF)]


@pytest.fixture
def history(django_capture_on_commit_callbacks: Any, memory_backend: Any) -> Any:
    """Automatic rejection, appeal, a reviewer's approval."""
    owner = user("owner")
    reject_automatically(memory_backend, "Gore?")
    with django_capture_on_commit_callbacks(execute=True):
        photo = OwnedPhoto.objects.create(owner=owner, image=image())
    with django_capture_on_commit_callbacks(execute=True):
        appeals.open_appeal(photo, owner, "=HYPERLINK(1)")
    with django_capture_on_commit_callbacks(execute=True):
        services.approve(photo, user("reviewer", staff=True), note="ok")
    return photo


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_has_every_column(history: Any) -> None:
    rows = read_csv("".join(export.lines(export.decisions(), "csv")))
    assert [(r["decision"], r["decided_by"], r["automated"]) for r in rows] == [
        ("rejected", "auto", "true"),
        ("review", "human", "false"),
        ("approved", "human", "false"),
    ]
    rejected, review, approved = rows
    key = Analysis.objects.for_object(history).first().content_key
    assert key and rejected["content_key"] == key
    assert rejected["content_type"] == "tests.ownedphoto"
    assert rejected["object_id"] == str(history.pk)
    assert json.loads(rejected["reasons"])[0]["question"] == "Gore?"
    assert rejected["appeal_status"] == "overturned"
    assert rejected["appealed_at"] and rejected["appeal_closed_at"]
    # Free text cannot become a spreadsheet formula.
    assert rejected["appeal_note"] == "'=HYPERLINK(1)"
    assert review["reviewer"] == "owner" and approved["reviewer"] == "reviewer"
    assert approved["note"] == "ok" and approved["appeal_status"] == ""


def test_jsonl_one_object_per_line(history: Any) -> None:
    lines = list(export.lines(export.decisions(), "jsonl"))
    records = [json.loads(line) for line in lines]
    assert all(line.endswith("\n") for line in lines)
    assert list(records[0]) == list(export.COLUMNS)
    assert (
        records[0]["automated"] is True and records[0]["appeal_status"] == "overturned"
    )
    assert records[0]["appeal_note"] == "=HYPERLINK(1)"  # JSON needs no escaping
    assert records[0]["reasons"][0]["rule"] == "question_yes"


def test_rows_are_read_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    ct_id = (
        ModerationDecision._meta.apps.get_model("contenttypes", "ContentType")
        .objects.get_for_model(OwnedPhoto)
        .pk
    )
    ModerationDecision.objects.bulk_create(
        ModerationDecision(
            content_type_id=ct_id,
            object_id=str(n),
            status="approved",
            decided_by_kind="auto",
        )
        for n in range(25)
    )
    monkeypatch.setattr(export, "CHUNK_SIZE", 10)
    rows = export.decisions()
    stream = export.lines(rows, "jsonl")
    with CaptureQueriesContext(connection) as queries:
        first = next(stream)
        assert len(queries) == 1  # one statement, read lazily
        rest = list(stream)
    assert (
        len(queries) == 1 and len(rest) == 24 and json.loads(first)["object_id"] == "0"
    )


def test_period_filters() -> None:
    ct = ModerationDecision._meta.apps.get_model(
        "contenttypes", "ContentType"
    ).objects.get_for_model(OwnedPhoto)
    old = ModerationDecision.objects.create(
        content_type=ct, object_id="1", status="approved"
    )
    new = ModerationDecision.objects.create(
        content_type=ct, object_id="2", status="rejected"
    )
    ModerationDecision.objects.filter(pk=old.pk).update(
        decided_at=timezone.make_aware(timezone.datetime(2026, 1, 1, 12))
    )
    ModerationDecision.objects.filter(pk=new.pk).update(
        decided_at=timezone.make_aware(timezone.datetime(2026, 2, 1, 12))
    )
    since = export.parse_moment("2026-01-15")
    until = export.parse_moment("2026-02-01", end=True)
    assert [r[0] for r in export.decisions(since, until)] == [new.pk]
    assert [
        r[0]
        for r in export.decisions(until=export.parse_moment("2026-01-01", end=True))
    ] == [old.pk]
    assert [r[0] for r in export.decisions(content_type_ids=[0])] == []
    with pytest.raises(ValueError, match="not an ISO date"):
        export.parse_moment("yesterday")


def test_command(history: Any, tmp_path: Any) -> None:
    out = io.StringIO()
    call_command("export_decisions", "--format", "jsonl", stdout=out)
    assert len(out.getvalue().splitlines()) == 3
    out = io.StringIO()
    call_command(
        "export_decisions",
        "--since",
        timezone.localdate().isoformat(),
        "--until",
        timezone.localdate().isoformat(),
        "--model",
        "tests.OwnedPhoto",
        stdout=out,
    )
    assert len(read_csv(out.getvalue())) == 3
    target = tmp_path / "decisions.csv"
    err = io.StringIO()
    call_command("export_decisions", "-o", str(target), stderr=err)
    assert len(read_csv(target.read_text())) == 3
    assert "3 decisions written" in err.getvalue()
    out = io.StringIO()
    call_command("export_decisions", "--until", "2000-01-01", stdout=out)
    assert read_csv(out.getvalue()) == []
    with pytest.raises(CommandError, match="not an ISO date"):
        call_command("export_decisions", "--since", "soon")
    with pytest.raises(CommandError, match="unknown model"):
        call_command("export_decisions", "--model", "tests.Nope")


def test_export_view(history: Any, client: Any) -> None:
    url = "/cloudinary-analysis/admin/export/"
    assert client.get(url).status_code == 302  # to the admin login
    client.force_login(user("staff", staff=True))
    assert client.get(url).status_code == 403  # no view permission
    client.force_login(user("auditor", staff=True, perms=("view_moderationdecision",)))
    response = client.get(url, {"format": "jsonl", "since": "2000-01-01"})
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("application/x-ndjson")
    assert "attachment;" in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode()
    assert len(body.splitlines()) == 3
    csv_response = client.get(url, {"format": "csv"})
    assert len(read_csv(b"".join(csv_response.streaming_content).decode())) == 3
    assert client.get(url, {"format": "xml"}).status_code == 400
    assert client.get(url, {"since": "nope"}).status_code == 400


def test_admin_actions(history: Any) -> None:
    request = RequestFactory().post("/admin/")
    chosen = ModerationDecision.objects.filter(status="approved")
    response = export_csv(None, request, chosen)  # type: ignore[arg-type]
    assert len(read_csv(b"".join(response.streaming_content).decode())) == 1
    response = export_jsonl(None, request, chosen)  # type: ignore[arg-type]
    [line] = b"".join(response.streaming_content).decode().splitlines()
    assert json.loads(line)["decision"] == "approved"
