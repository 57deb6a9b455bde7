"""The hand-written baseline of issue 13: a ``post_save`` receiver that
publishes after commit, and a task that loads the object, posts to the
Analyze API with a ``requests.Session`` and stores the JSON in one UPDATE.

No claim, dedup, tags, verdict, quota or failure bookkeeping: the code a team
would write instead of installing the app, so the benchmark can say what
those guarantees cost.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any
from urllib.parse import urljoin

import requests
from celery import shared_task
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from bench.benchapp.models import HandPhoto
from django_cloudinary_analysis.client._config import build_base_url

#: The type the hand-written task asks for (the benchmark sends the same body).
ANALYSIS_TYPE = "google_tagging"


@cache
def _session() -> tuple[requests.Session, str]:
    from django.conf import settings

    conf = settings.CLOUDINARY_ANALYSIS
    session = requests.Session()
    session.auth = (conf["API_KEY"], conf["API_SECRET"])
    session.headers["Content-Type"] = "application/json"
    base = build_base_url(conf.get("BASE_URL"), conf["CLOUD_NAME"])
    return session, base


def request_body(photo: Any) -> bytes:
    """The JSON body (the same bytes the app's client sends for this file)."""
    from django.conf import settings

    url = urljoin(settings.CLOUDINARY_ANALYSIS["MEDIA_BASE_URL"], photo.image.url)
    return json.dumps({"source": {"uri": url}}, separators=(",", ":")).encode()


@shared_task(name="benchapp.analyze_photo", ignore_result=True)
def analyze_photo(pk: int) -> None:
    """Load, post, store: one SELECT, one HTTP call, one UPDATE."""
    photo = HandPhoto.objects.get(pk=pk)
    session, base = _session()
    response = session.post(
        f"{base}/analyze/{ANALYSIS_TYPE}", data=request_body(photo), timeout=30
    )
    response.raise_for_status()
    HandPhoto.objects.filter(pk=pk).update(analysis=response.json())


@receiver(post_save, sender=HandPhoto, dispatch_uid="benchapp.handwritten")
def photo_saved(
    sender: type, instance: HandPhoto, created: bool, **kwargs: Any
) -> None:
    """Analyse every saved photo once its transaction commits."""
    pk = instance.pk
    transaction.on_commit(lambda: analyze_photo.delay(pk))
