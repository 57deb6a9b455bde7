"""Promises 8 and 9, and issue 12: no secret leaks; permissions hold; hostile input."""

from __future__ import annotations

import contextlib
import email
import json
import logging
import socket
import sys
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
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
from django_cloudinary_analysis.rest_framework.parsers import BoundedJSONParser
from tests.integration import harness
from tests.integration import settings as it_settings
from tests.integration.conftest import BOTH_DATABASES, It
from tests.integration.harness import SCAN, SECRETS, image, wait_finished
from tests.models import Photo
from tests.support.api_samples import sample_webhook
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


# -- issue 12: hostile and odd input through a real WSGI server ---------------------

SECURITY_SETTINGS = "tests.integration.security_settings"
#: A CSRF secret as a browser holds it in its cookie (32 characters).
CSRF = "c" * 32
NESTED = b"[" * 50_000 + b"]" * 50_000


class GunicornSite(harness.WebServer):
    """The integration site under gunicorn: a production WSGI server.

    It de-chunks request bodies and passes them without a Content-Length,
    with ``wsgi.input_terminated``; tasks run in the request (no broker).
    """

    def argv(self) -> list[str]:
        """Return gunicorn's command line (one worker, a few threads)."""
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            "1",
            "--threads",
            "4",
            "--timeout",
            "120",
            "tests.integration.security_wsgi:application",
        ]


@dataclass
class Sites:
    """The same site with DEBUG on (technical pages) and off (error mails)."""

    debug: GunicornSite
    prod: GunicornSite
    mail_dir: Path


@pytest.fixture(scope="module")
def sites(stack: harness.Stack) -> Iterator[Sites]:
    """Start the two gunicorn sites on the stack's database and fake API."""
    # Beside the logs: the secrets scan reads every file of the log directory.
    mail_dir = stack.log_dir.parent / "security-mail"
    mail_dir.mkdir(exist_ok=True)
    env = {
        key: value
        for key, value in stack.env().items()
        if key != it_settings.ENV_BROKER
    }
    env.update(
        DJANGO_SETTINGS_MODULE=SECURITY_SETTINGS,
        CELERY_TASK_ALWAYS_EAGER="1",
        DCA_SEC_MAIL_DIR=str(mail_dir),
    )
    started: list[GunicornSite] = []
    try:
        for debug in ("1", "0"):
            site = GunicornSite(
                {**env, "DCA_SEC_DEBUG": debug},
                stack.log_dir / f"gunicorn-debug{debug}-{stack.db.kind}.log",
            )
            started.append(site.start())
        yield Sites(debug=started[0], prod=started[1], mail_dir=mail_dir)
    finally:
        for site in started:
            site.stop()
            SCAN.scan(f"log of {site.log_path.name}", site.log_path.read_bytes())


def send(
    url: str,
    path: str,
    body: bytes = b"",
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    chunked: bool = False,
    declared_length: int | None = None,
) -> tuple[int, bytes]:
    """Send one raw HTTP/1.1 request; return (status, body).

    ``chunked`` sends the body with chunked transfer coding (no
    Content-Length); ``declared_length`` declares a length and sends only
    the headers. A server may answer before reading everything: sending
    stops quietly then, and the answer is read.
    """
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1" and parts.port
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    elif declared_length is not None:
        lines.append(f"Content-Length: {declared_length}")
        payload = b""
    else:
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
    with socket.create_connection((parts.hostname, parts.port), timeout=120) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    head, _, content = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), content


def session_headers(account: User, *, csrf_token: bool = True) -> dict[str, str]:
    """Headers of a signed-in browser: session and CSRF cookies (and token)."""
    client = Client()
    client.force_login(account)
    session = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    headers = {
        "Cookie": f"{django_settings.SESSION_COOKIE_NAME}={session}; csrftoken={CSRF}",
        "Content-Type": "application/json",
    }
    if csrf_token:
        headers["X-CSRFToken"] = CSRF
    return headers


def mails(mail_dir: Path) -> list[str]:
    """Every part of every mail the DEBUG=False site wrote, decoded."""
    texts = []
    for path in sorted(mail_dir.iterdir()):
        for raw in path.read_text().split("-" * 79):
            if not raw.strip():
                continue
            message = email.message_from_string(raw.strip())
            for part in message.walk():
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes):
                    texts.append(payload.decode("utf-8", "replace"))
    return texts


def test_error_pages_and_mails_hold_no_secret(
    it: It, settings: Any, sites: Sites
) -> None:
    settings.ROOT_URLCONF = URLCONF
    # A failure after the signature check, in the webhook view.
    body = json.dumps(
        {"notification_type": "analyze", "task_id": "explode-1", "data": {}}
    ).encode()
    # A failure inside the backend's call, below the task run in the request.
    root = user("root", superuser=True)
    with transaction.atomic():
        photo = Photo.objects.create(
            title="root: x", image=image("explode.png", 93_000)
        )
    wait_finished(timeout=60, workers=[it.worker], expect=3)
    reanalyze = f"{API}/objects/tests.photo/{photo.pk}/reanalyze/"
    headers = session_headers(root)
    pages = []
    probe = harness.SecretScan()
    for site in (sites.debug, sites.prod):
        signed = notification_headers(body, harness.API_SECRET)
        status, page = send(
            site.url, "/cloudinary-analysis/webhook/", body, headers=signed
        )
        assert status == 500
        pages.append(page)
        status, page = send(
            site.url,
            reanalyze,
            b'{"force": true, "types": ["google_tagging"]}',
            headers=headers,
        )
        assert status == 500, page[:500]
        pages.append(page)
    technical = [page.decode() for page in pages[:2]]
    assert "in webhook" in technical[0] and "Local vars" in technical[0]
    for frame in ("in run_analysis", "in _run_claimed", "in analyze"):
        assert frame in technical[1], frame
    texts = mails(sites.mail_dir)
    reports = [t for t in texts if "local vars" in t.lower()]
    assert len(reports) >= 2  # one HTML report per failure
    found = sum(probe.scan("technical 500 page", page) for page in pages[:2])
    found += sum(probe.scan("error mail", text) for text in texts)
    for page in pages:
        SCAN.scan("error page", page)
    for text in texts:
        SCAN.scan("error mail", text)
    it.figure(
        f"error reports: {len(pages) // 2} technical 500 pages (DEBUG=True) and "
        f"{len(reports)} HTML error mails (DEBUG=False) from failures forced in "
        f"the webhook view and inside the backend call of a task, under gunicorn "
        f"-> {found} secret occurrences"
    )
    assert found == 0, dict(probe.hits)


def test_reused_results_show_nothing_of_another_owner(
    it: It, settings: Any, sites: Sites
) -> None:
    settings.ROOT_URLCONF = URLCONF
    alice, bob = user("alice", staff=True, perms=("view_analysis",)), user("bob")
    with transaction.atomic():
        original = Photo.objects.create(
            title="bob: original", image=image("bob-private-name.png", 94_000)
        )
    wait_finished(timeout=60, workers=[it.worker], expect=3)
    with transaction.atomic():
        copy = Photo.objects.create(title="alice: copy", image=image("a.png", 94_000))
    wait_finished(timeout=60, workers=[it.worker], expect=6)
    reused = list(Analysis.objects.for_object(copy).exclude(reused_from=None))
    assert reused, "the copy reused nothing"
    donors = Analysis.objects.for_object(original)
    headers = session_headers(alice)

    bodies = []
    status, listing = send(
        sites.prod.url, f"{API}/analyses/", method="GET", headers=headers
    )
    assert status == 200
    bodies.append(listing)
    for analysis in reused:
        status, detail = send(
            sites.prod.url,
            f"{API}/analyses/{analysis.pk}/",
            method="GET",
            headers=headers,
        )
        assert status == 200
        data = json.loads(detail)
        assert data["reused_from"] is None and data["request_id"] == ""
        assert data["raw"]["data"]["entity"] == analysis.file_name
        bodies.append(detail)
    text = b"".join(bodies).decode()
    assert "bob-private-name" not in text and original.image.name not in text
    for donor in donors:
        assert f'"reused_from":{donor.pk}' not in text.replace(" ", "")
        status, _ = send(
            sites.prod.url, f"{API}/analyses/{donor.pk}/", method="GET", headers=headers
        )
        assert status == 404
    it.figure(
        f"dedup: {len(reused)} analyses of alice's copy reused bob's results; "
        f"over gunicorn alice sees 0 donor ids, 0 donor request ids and 0 "
        f"occurrences of bob's file name in {len(bodies)} API answers"
    )
    del bob


def test_nested_oversized_and_chunked_bodies(
    it: It, settings: Any, sites: Sites
) -> None:
    settings.ROOT_URLCONF = URLCONF
    with transaction.atomic():
        photo = Photo.objects.create(title="eve: x", image=image("eve.png", 95_000))
    wait_finished(timeout=60, workers=[it.worker], expect=3)
    waiting = Analysis.objects.for_object(photo).get(
        analysis_type="ai_vision_moderation"
    )
    Analysis.objects.filter(pk=waiting.pk).update(
        status=AnalysisStatus.WAITING, remote_task_id="chunked-task"
    )
    before = harness.statuses()
    decisions = ModerationDecision.objects.count()
    any_analysis = Analysis.objects.for_object(photo).first()
    assert any_analysis is not None
    writes = [
        f"{API}/analyses/{any_analysis.pk}/reanalyze/",
        f"{API}/objects/tests.photo/{photo.pk}/reanalyze/",
        f"{API}/moderation/tests.photo/{photo.pk}/approve/",
        f"{API}/moderation/tests.photo/{photo.pk}/reject/",
    ]
    url = sites.prod.url
    hook = "/cloudinary-analysis/webhook/"
    results: dict[str, list[int]] = {}

    # Signed in, no permission, CSRF cookie but no token: refused, not a 500.
    nobody = session_headers(user("eve", staff=True), csrf_token=False)
    results["API nested, no permission or CSRF token"] = [
        send(url, path, NESTED, headers=nobody)[0] for path in writes
    ]
    boss = session_headers(
        user(
            "eve-boss",
            staff=True,
            perms=("reanalyze_media", "review_media", "view_photo", "change_photo"),
        )
    )
    results["API nested, permitted"] = [
        send(url, path, NESTED, headers=boss)[0] for path in writes
    ]
    # One byte over the parser's cap: read to the end before the answer.
    huge = b"x" * (BoundedJSONParser.max_body_size + 1)
    results["API body over 256 KiB"] = [
        send(url, path, huge, headers=boss)[0] for path in writes
    ]
    results["admin form, nested title"] = [
        send(
            url,
            f"/admin/tests/photo/{photo.pk}/change/",
            b"title=" + b"%5B" * 50_000,
            headers={**boss, "Content-Type": "application/x-www-form-urlencoded"},
        )[0]
    ]
    nested_signed = notification_headers(NESTED, harness.API_SECRET)
    results["webhook nested, signed"] = [
        send(url, hook, NESTED, headers=nested_signed)[0]
    ]
    cap = int(app_settings.WEBHOOK_MAX_BODY)
    # One byte over the cap: the view reads it all, then refuses.
    big = b"x" * (cap + 1)
    big_signed = notification_headers(big, harness.API_SECRET)
    results["webhook over 5 MiB, Content-Length"] = [
        send(url, hook, headers=big_signed, declared_length=cap + 1)[0]
    ]
    results["webhook over 5 MiB, chunked"] = [
        send(url, hook, big, headers=big_signed, chunked=True)[0]
    ]
    small = b'{"notification_type": "analyze", "task_id": "chunked-task"}'
    results["webhook chunked to runserver (cannot be read)"] = [
        send(
            it.stack.web.url,
            hook,
            small,
            headers=notification_headers(small, harness.API_SECRET),
            chunked=True,
        )[0]
    ]
    assert results == {
        "API nested, no permission or CSRF token": [400] * 4,
        "API nested, permitted": [400] * 4,
        "API body over 256 KiB": [413] * 4,
        "admin form, nested title": [200],  # the form's own error
        "webhook nested, signed": [400],
        "webhook over 5 MiB, Content-Length": [413],
        "webhook over 5 MiB, chunked": [413],
        "webhook chunked to runserver (cannot be read)": [411],
    }
    photo.refresh_from_db()
    assert photo.title == "eve: x"
    assert harness.statuses() == before
    assert ModerationDecision.objects.count() == decisions

    # A chunked notification within the cap is read and applied.
    result = sample_webhook("ai_vision_moderation", "chunked-task", waiting.params)
    body = json.dumps(result).encode()
    status, answer = send(
        url,
        hook,
        body,
        headers=notification_headers(body, harness.API_SECRET),
        chunked=True,
    )
    assert (status, json.loads(answer)) == (200, {"status": "applied"})
    waiting.refresh_from_db()
    assert waiting.status == AnalysisStatus.SUCCEEDED
    for what, codes in results.items():
        it.figure(f"bodies: {what} -> {codes}")
    it.figure("bodies: a chunked, signed notification within the cap -> 200 applied")


@BOTH_DATABASES
def test_odd_signed_notifications_never_500(
    it: It, settings: Any, sites: Sites
) -> None:
    settings.ROOT_URLCONF = URLCONF
    with transaction.atomic():
        photo = Photo.objects.create(title="odd: x", image=image("odd.png", 96_000))
    wait_finished(timeout=60, workers=[it.worker], expect=3)
    rows = {a.analysis_type: a for a in Analysis.objects.for_object(photo)}
    moderation, tagging = rows["ai_vision_moderation"], rows["google_tagging"]
    for analysis, task in ((moderation, "odd-result"), (tagging, "odd-error")):
        Analysis.objects.filter(pk=analysis.pk).update(
            status=AnalysisStatus.WAITING, remote_task_id=task
        )
    result = sample_webhook("ai_vision_moderation", "odd-result", moderation.params)
    result.update(
        request_id={"not": "text"},
        http_status="two hundred",
        limits={"items": [{"type": "ai_vision", "remaining": -(10**15)}]},
    )
    result["data"]["entity"] = "nul\x00 and \ud800 surrogate"
    result["data"]["analysis"]["note\x00"] = ["\x00", "\udfff"]
    error = {
        "notification_type": "analyze",
        "task_id": "odd-error",
        "request_id": ["x"],
        "error": {"code": {"nested": 1}, "message": "broke\x00here"},
        "data": None,
    }
    answers = []
    for payload in (result, error):
        body = json.dumps(payload).encode()  # \u0000 and \ud800 escapes
        headers = notification_headers(body, harness.API_SECRET)
        status, content = send(
            sites.prod.url, "/cloudinary-analysis/webhook/", body, headers=headers
        )
        answers.append((status, json.loads(content)))
    nan = b'{"notification_type": "analyze", "task_id": "odd-error", "x": NaN}'
    status, _ = send(
        sites.prod.url,
        "/cloudinary-analysis/webhook/",
        nan,
        headers=notification_headers(nan, harness.API_SECRET),
    )
    answers.append((status, {}))

    assert answers == [
        (200, {"status": "applied"}),
        (200, {"status": "failed"}),
        (400, {}),
    ]
    moderation.refresh_from_db()
    tagging.refresh_from_db()
    assert moderation.status == AnalysisStatus.SUCCEEDED
    assert moderation.raw["data"]["entity"] == "nul\ufffd and \ufffd surrogate"
    assert tagging.status == AnalysisStatus.FAILED
    assert (tagging.error_code, tagging.error_message) == (
        "remote_error",
        "the API reports: broke\ufffdhere (HTTP None)",
    )
    it.figure(
        f"odd notifications on {it.db_kind}: NUL, lone surrogates, an object "
        f"request_id, a text http_status, an odd error and NaN -> "
        f"{[status for status, _ in answers]} (applied, failed with its reason, "
        f"refused)"
    )
