"""Promises 8 and 9: no secret leaks anywhere; permissions hold in real requests."""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import transaction
from django.test import Client, override_settings

from django_cloudinary_analysis.client import AnalyzeClient
from django_cloudinary_analysis.conf import app_settings
from django_cloudinary_analysis.exceptions import AnalysisError
from django_cloudinary_analysis.models import (
    Analysis,
    AnalysisStatus,
    ModerationDecision,
)
from tests.integration import harness
from tests.integration.conftest import It
from tests.integration.harness import SCAN, SECRETS, image, wait_finished
from tests.models import Photo
from tests.support.fake_api import notification_headers, post_notification

pytestmark = pytest.mark.integration

URLCONF = "tests.integration.urls"
API = "/api/analysis"
ADMIN_ACTIONS = ("reanalyze_selected", "approve_selected", "reject_selected")


@contextmanager
def queue(name: str) -> Iterator[None]:
    """Send the analyses scheduled inside to the workers of queue ``name``."""
    conf = {**app_settings.user_settings, "QUEUE": name}
    with override_settings(CLOUDINARY_ANALYSIS=conf):
        yield


def user(
    name: str,
    *,
    staff: bool = False,
    superuser: bool = False,
    perms: Iterable[str] = (),
) -> User:
    """Create a user with the given model permissions (codenames)."""
    account = User.objects.create_user(
        name, password="pw", is_staff=staff or superuser, is_superuser=superuser
    )
    for codename in perms:
        account.user_permissions.add(Permission.objects.get(codename=codename))
    return account


def logged_in(account: User | None) -> Client:
    """Return a test client, logged in as ``account`` when given."""
    client = Client()
    if account is not None:
        client.force_login(account)
    return client


def analysed_photos(it: It, count: int) -> list[Photo]:
    """Upload ``count`` photos and wait for their analyses."""
    with transaction.atomic():
        photos = [
            Photo.objects.create(image=image(f"sec-{n}.png", 90_000 + n))
            for n in range(count)
        ]
    wait_finished(timeout=60, workers=[it.worker], expect=3 * count)
    return photos


def test_permissions_hide_results_and_refuse_changes(it: It, settings: Any) -> None:
    settings.ROOT_URLCONF = URLCONF
    photo, other = analysed_photos(it, 2)
    analysis = Analysis.objects.for_object(photo).first()
    assert analysis is not None
    ct = "tests.photo"
    reads = [
        f"{API}/analyses/",
        f"{API}/analyses/{analysis.pk}/",
        f"{API}/objects/{ct}/{photo.pk}/",
        f"{API}/moderation/",
    ]
    writes = [
        f"{API}/analyses/{analysis.pk}/reanalyze/",
        f"{API}/objects/{ct}/{photo.pk}/reanalyze/",
        f"{API}/moderation/{ct}/{photo.pk}/approve/",
        f"{API}/moderation/{ct}/{photo.pk}/reject/",
    ]
    admin_pages = [
        "/admin/cloudinary_analysis/analysis/",
        "/admin/cloudinary_analysis/moderationdecision/",
        "/admin/tests/photo/",
    ]
    users = {
        "anonymous": None,
        "non-staff": user("reader"),
        "staff without permissions": user("staffer", staff=True),
        "staff who may only view": user(
            "viewer",
            staff=True,
            perms=("view_analysis", "view_moderationdecision", "view_photo"),
        ),
    }
    analyses_before = Analysis.objects.count()
    decisions_before = ModerationDecision.objects.count()
    requests_before = it.fake.count(endpoint="analyze")
    denied = 0
    table: list[str] = []
    for who, account in users.items():
        client = logged_in(account)
        read_codes = [client.get(url).status_code for url in reads]
        write_codes = [
            client.post(url, {}, content_type="application/json").status_code
            for url in writes
        ]
        staff = account is not None and account.is_staff
        if not staff:
            # Anonymous and non-staff users get nothing at all.
            assert set(read_codes) <= {401, 403}, (who, read_codes)
            for url in reads:
                body = client.get(url).content.decode()
                assert '"analysis_type"' not in body and '"tags"' not in body
        assert set(write_codes) <= {401, 403}, (who, write_codes)
        denied += len(write_codes) + (0 if staff else len(read_codes))

        # The admin: no page without staff; no action without its permission.
        page_codes = [client.get(url).status_code for url in admin_pages]
        if not staff:
            assert set(page_codes) == {302}, (who, page_codes)  # to the login page
        visible_actions = []
        for url in admin_pages:
            response = client.get(url)
            if response.status_code == 200:
                html = response.content.decode()
                visible_actions += [a for a in ADMIN_ACTIONS if f'value="{a}"' in html]
        assert visible_actions == [], (who, visible_actions)
        # Posting an action anyway changes nothing.
        for action in ADMIN_ACTIONS:
            client.post(
                "/admin/tests/photo/",
                {"action": action, "_selected_action": [photo.pk, other.pk]},
            )
        table.append(
            f"{who}: API reads {read_codes}, writes {write_codes}, admin {page_codes}"
        )

    assert Analysis.objects.count() == analyses_before
    assert ModerationDecision.objects.count() == decisions_before
    assert it.fake.count(endpoint="analyze") == requests_before

    # The same requests from a user holding the permissions do work, so the
    # refusals above are the permissions, not broken URLs.
    boss = logged_in(
        user(
            "boss",
            staff=True,
            perms=(
                "view_analysis",
                "view_moderationdecision",
                "view_photo",
                "change_photo",
                "reanalyze_media",
                "review_media",
            ),
        )
    )
    assert [boss.get(url).status_code for url in reads] == [200] * len(reads)
    approved = boss.post(writes[2], {}, content_type="application/json")
    assert approved.status_code == 200
    rerun = boss.post(writes[0], {"force": True}, content_type="application/json")
    assert rerun.status_code in (200, 202)
    html = boss.get("/admin/tests/photo/").content.decode()
    assert all(f'value="{a}"' in html for a in ADMIN_ACTIONS)
    assert ModerationDecision.objects.count() == decisions_before + 1
    wait_finished(timeout=60, workers=[it.worker])
    assert Analysis.objects.count() == analyses_before + 1

    for row in table:
        it.figure("permissions: " + row)
    it.figure(
        f"permissions: {denied} API requests from anonymous, non-staff and "
        f"unpermitted staff users refused, 0 results shown to non-staff, 0 admin "
        f"actions shown without their permission, 0 analyses or decisions created "
        f"and 0 API calls made by them; a permitted user's identical requests work"
    )


def exception_texts(exc: BaseException) -> list[str]:
    """Return every way an exception is shown: text, repr, traceback, details."""
    texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    if isinstance(exc, AnalysisError):
        texts.append(repr(exc.details))
    return texts


def closed_port() -> int:
    """Return a loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.scan_last
def test_no_secret_in_logs_rows_api_responses_admin_pages_or_exceptions(
    it: It, settings: Any
) -> None:
    settings.ROOT_URLCONF = URLCONF
    kind = it.db_kind
    # Credentials at work: Basic auth (main worker), an OAuth token (its own
    # worker), a wrong secret, 401s, retries and refused webhooks.
    oauth = it.stack.start_worker(
        "oauth",
        queue=f"oauth-{kind}",
        concurrency=2,
        DCA_IT_OAUTH_TOKEN=harness.OAUTH_TOKEN,
    )
    try:
        it.fake.add_fault("unauthorized", source="sec-401")
        it.fake.add_fault("server_error", times=3)
        with transaction.atomic():
            Photo.objects.create(image=image("sec-401.png", 91_000))
            for n in range(3):
                Photo.objects.create(image=image(f"sec-main-{n}.png", 91_001 + n))
        with queue(f"oauth-{kind}"), transaction.atomic():
            for n in range(3):
                Photo.objects.create(image=image(f"sec-oauth-{n}.png", 91_010 + n))
        counts = wait_finished(timeout=60, workers=[it.worker, oauth], expect=21)
        assert counts[AnalysisStatus.FAILED] == 3  # the 401s
        assert it.fake.count(fault="unauthorized") == 3
    finally:
        oauth.stop(timeout=10)
    body = b'{"notification_type":"analyze","task_id":"nope"}'
    assert (
        post_notification(
            it.stack.web.webhook_url,
            body,
            notification_headers(body, harness.WRONG_SECRET),
        )
        == 403
    )

    # Exception text of the client's failures, in this process.
    failures = []
    clients = [
        AnalyzeClient(
            "demo-cloud",
            api_key=harness.API_KEY,
            api_secret=harness.WRONG_SECRET,
            base_url=it.fake.base_url,
        ),
        AnalyzeClient(
            "demo-cloud", oauth_token="wrong-token", base_url=it.fake.base_url
        ),
        AnalyzeClient(
            "demo-cloud",
            api_key=harness.API_KEY,
            api_secret=harness.API_SECRET,
            base_url=f"http://127.0.0.1:{closed_port()}/v2/analysis/demo-cloud",
        ),
    ]
    for client in clients:
        try:
            client.google_tagging("https://media.example.com/a.png")
        except AnalysisError as exc:
            failures.append(exc)
        SCAN.scan("client repr", repr(client))
    assert len(failures) == len(clients)
    for exc in failures:
        for text in exception_texts(exc):
            SCAN.scan("exception text", text)
    SCAN.scan("credentials repr", repr(app_settings.credentials))

    # API responses and admin pages, as a superuser sees them.
    boss = logged_in(user("root", superuser=True))
    pages = [f"{API}/analyses/?page_size=100", f"{API}/moderation/"]
    for analysis in Analysis.objects.all():
        pages.append(f"{API}/analyses/{analysis.pk}/")
        pages.append(f"/admin/cloudinary_analysis/analysis/{analysis.pk}/change/")
    for photo in Photo.objects.all():
        pages.append(f"{API}/objects/tests.photo/{photo.pk}/")
        pages.append(f"/admin/tests/photo/{photo.pk}/change/")
    pages += [
        "/admin/",
        "/admin/cloudinary_analysis/analysis/",
        "/admin/cloudinary_analysis/mediatag/",
        "/admin/cloudinary_analysis/moderationdecision/",
        "/admin/tests/photo/",
    ]
    for url in pages:
        response = boss.get(url)
        assert response.status_code == 200, url
        where = "API response" if url.startswith(API) else "admin page"
        SCAN.scan(where, response.content)

    # Rows stored by this test (every other test's rows were scanned when it
    # ended) and the logs of every process of the run so far.
    for table, text in harness.dump_rows():
        SCAN.scan(f"stored rows of {table}", text)
    log_dir: Path = it.stack.log_dir
    for worker in it.stack.workers:
        SCAN.scan(f"log of worker {worker.log_path.name}", worker.log_text())
    for handler in logging.getLogger().handlers:
        handler.flush()  # this process's log file is scanned next
    for path in sorted(log_dir.iterdir()):
        SCAN.scan(f"log {path.name}", path.read_bytes())

    # The scanner itself finds what it looks for.
    probe = harness.SecretScan()
    header = harness.basic_header(harness.API_KEY, harness.API_SECRET)
    assert probe.scan("probe", f"Authorization: {header}") == 2  # header + token
    assert probe.scan("probe", f"secret={harness.API_SECRET}") == 1
    scanned = sum(SCAN.bytes_scanned.values())
    places = {where.split(" of ")[0].split(" ")[0] for where in SCAN.scanned}
    it.figure(
        f"secrets: {len(SECRETS)} secret strings (API secret, Basic header and "
        f"token, a wrong secret and its header, an OAuth token) searched in "
        f"{scanned / 1e6:.1f} MB: {sum(SCAN.scanned.values())} texts from "
        f"{len(places)} kinds of place (DEBUG logs of every worker, web server "
        f"and this process, stored rows of every test, "
        f"{SCAN.scanned['API response']} API responses, "
        f"{SCAN.scanned['admin page']} admin pages, "
        f"{SCAN.scanned['exception text']} exception texts) -> "
        f"{SCAN.total_hits} occurrences"
    )
    assert SCAN.total_hits == 0, dict(SCAN.hits)
