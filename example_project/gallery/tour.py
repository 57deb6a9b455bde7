"""The short tour printed at the end of ``manage.py demo``: what to open, per feature.

Every line is read back from the database after the analyses ran: the objects
named, the labels, the text, the reasons and the model that produced each
answer are what is stored, not a script.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db.models import Model
from django.urls import NoReverseMatch, reverse

from django_cloudinary_analysis import moderation, services
from django_cloudinary_analysis.models import Analysis, AnalysisStatus
from gallery.report import _raw_analysis

#: At most this many objects waiting for review are named, so the tour fits a
#: screen.
MAX_NAMED = 5


def _model_of(analysis: Analysis) -> str:
    """Name what produced an analysis: the model it reports, else the backend."""
    model = _raw_analysis(analysis).get("model")
    return str(model) if model else f"the {analysis.backend or 'configured'} backend"


def _succeeded(objects: Iterable[Model], analysis_type: str) -> Iterator[Analysis]:
    for obj in objects:
        for analysis in services.current_analyses(obj):
            if (
                analysis.analysis_type == analysis_type
                and analysis.status == AnalysisStatus.SUCCEEDED
            ):
                yield analysis


def _write_back(objects: Iterable[Model]) -> list[str]:
    """One line: the alt text and taggit tags the app wrote on the objects."""
    alt = [o for o in objects if getattr(o, "alt_text", "")]
    tagged = [o for o in objects if hasattr(o, "tags") and o.tags.exists()]
    if not alt and not tagged:
        return []
    parts = []
    if tagged:
        names = ", ".join(t.name for t in tagged[0].tags.order_by("name"))  # type: ignore[attr-defined]
        parts.append(f"taggit tags on {len(tagged)} photos ({tagged[0]}: {names})")
    if alt:
        named = ", ".join(str(o) for o in alt[:2]) + (" …" if len(alt) > 2 else "")
        parts.append(f"alt text on {len(alt)} ({named})")
    else:
        parts.append("no alt text (no caption, no text read)")
    return ["  Written  " + "; ".join(parts)]


def _url(base: str, name: str, *args: Any) -> str:
    try:
        return base + reverse(name, args=args)
    except NoReverseMatch:
        return ""


def lines(base: str, objects: list[Model]) -> list[str]:
    """Return the tour for ``objects`` on the site at ``base``."""
    out = [
        f"A short tour: log in as admin / admin at {_url(base, 'admin:index')}",
        f"  Gallery  {base}/ — every upload with verdict, quality, text and tags",
    ]

    def owner(analysis: Analysis) -> Any:
        return analysis.content_object

    tagged = [a for a in _succeeded(objects, "google_tagging") if a.tags.exists()]
    tagged = [a for a in tagged if not a.reused_from_id]
    if tagged:
        first = tagged[0]
        obj = owner(first)
        top = ", ".join(
            f"{t.label} {t.confidence:.2f}" if t.confidence is not None else t.label
            for t in first.tags.order_by("-confidence")[:3]
        )
        out.append(f"  Tags     {obj}: {top} — by {_model_of(first)}")
        if obj is not None:
            meta = obj._meta
            change = _url(
                base, f"admin:{meta.app_label}_{meta.model_name}_change", obj.pk
            )
            out.append(f"           {change} (tags inline; the list's top-tags column)")
    read = [a for a in _succeeded(objects, "cld_text") if _raw_analysis(a).get("text")]
    if read:
        text = " / ".join(str(_raw_analysis(read[0]).get("text")).split("\n"))
        out.append(f"  OCR      {owner(read[0])}: “{text}” — by {_model_of(read[0])}")
    reused = [
        a for o in objects for a in services.current_analyses(o) if a.reused_from_id
    ]
    if reused:
        copy, donor = owner(reused[0]), reused[0].reused_from
        source = donor.content_object if donor is not None else None
        count = sum(1 for a in reused if owner(a) == copy)
        out.append(
            f"  Dedup    {copy}: {count} analyses reused from {source} (same bytes, "
            "no model run)"
        )
    low = [
        (a, (a.result or {}).get("quality") or {})
        for a in _succeeded(objects, "image_quality")
    ]
    low = [(a, q) for a, q in low if q.get("word") == "low"]
    if low:
        named = ", ".join(f"{owner(a)} {q.get('score') or 0:.2f}" for a, q in low)
        out.append(f"  Quality  low: {named} — by {_model_of(low[0][0])}")
    out.extend(_write_back(objects))
    waiting = [o for o in objects if getattr(o, "moderation_status", "") == "review"]
    policy = moderation.get_policy()
    queue = _url(base, "admin:cloudinary_analysis_moderationdecision_changelist")
    out.append(f"  Review   {len(waiting)} waiting in {queue}")
    for obj in waiting[:MAX_NAMED]:
        decision = obj.moderation_history.first()  # type: ignore[attr-defined]
        reasons = (
            "; ".join(moderation.describe_decision(decision, policy))
            if decision
            else ""
        )
        out.append(f"           {obj}: {reasons}")
    if len(waiting) > MAX_NAMED:
        out.append(f"           … and {len(waiting) - MAX_NAMED} more")
    out.append(
        "           open one, read its reasons, then Approve or Reject (or let the "
        "policy decide)"
    )
    api = base + "/api/analysis"
    out.append(f"  API      curl -u admin:admin {_url(base, 'api-root')}photos/")
    out.append(f"           curl -u admin:admin '{api}/analyses/?tag=espresso'")
    if waiting:
        obj = waiting[0]
        label = ContentType.objects.get_for_model(obj)
        out.append(
            f"           curl -u admin:admin -X POST "
            f"{api}/moderation/{label.app_label}.{label.model}/{obj.pk}/approve/"
        )
    return out
