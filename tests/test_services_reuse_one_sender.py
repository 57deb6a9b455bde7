"""One sender per content: the partial unique index behind dedup's election.

``services.reuse._lead_or_follow`` stores the content key on a running
analysis to become the one copy that calls the API; the database admits one
such row per (content key, type, params), so two copies storing it at the
same moment cannot both send. Force runs (``allow_reuse=False``) are not
elections and may overlap. The election itself is
``AnalysisQuerySet.elect`` in ``analysis_querysets.py``.
"""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from django_cloudinary_analysis import services
from django_cloudinary_analysis.models import Analysis
from tests.models import Photo
from tests.support.images import png_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def copies(image_file, memory_backend):  # type: ignore[no-untyped-def]
    from django.core.files.base import ContentFile

    first = Photo.objects.create(image=ContentFile(png_bytes(5), name="a.png"))
    second = Photo.objects.create(image=ContentFile(png_bytes(5), name="b.png"))
    return [p.analyses.get(analysis_type="google_tagging") for p in (first, second)]


def test_the_database_admits_one_sender_per_content(copies):
    now = timezone.now()
    Analysis.objects.filter(pk=copies[0].pk).update(
        status="running", started_at=now, content_key="sha256:same"
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Analysis.objects.filter(pk=copies[1].pk).update(
            status="running", started_at=now, content_key="sha256:same"
        )
    # A finished copy, or a forced one, is no election.
    Analysis.objects.filter(pk=copies[1].pk).update(
        status="running", content_key="sha256:same", allow_reuse=False
    )
    Analysis.objects.filter(pk=copies[0].pk).update(status="succeeded")


def test_a_silent_sender_is_released_and_the_copy_sends(copies, memory_backend):
    lead, copy = copies
    services.run(lead.pk)
    # The lead is sending again but said nothing for longer than TWIN_LEASE:
    # the twin query no longer counts it, the index still does. The copy's
    # election meets the index, releases the silent lead, and sends.
    long_ago = timezone.now() - timezone.timedelta(hours=1)
    Analysis.objects.filter(pk=lead.pk).update(status="running", started_at=long_ago)
    calls = len(memory_backend.calls)
    assert services.run(copy.pk).status == "succeeded"
    assert len(memory_backend.calls) == calls + 1
    lead.refresh_from_db()
    assert lead.status == "running" and lead.content_key == ""
