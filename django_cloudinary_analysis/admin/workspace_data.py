"""What the review workspace shows, loaded for a whole batch of items at once.

The queue (current open verdicts, filtered), the reviewer's claimed items
and, for each item: its image, moderation answers, labels, caption, quality,
reasons, history and the other objects with the same content. A fixed number
of queries whatever the number of items.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_cloudinary_analysis import services
from django_cloudinary_analysis.admin.changelists import ObjectKey, load_objects
from django_cloudinary_analysis.admin.display import QUEUE_RANK
from django_cloudinary_analysis.mixins import (
    content_type_for,
    media_models,
)
from django_cloudinary_analysis.models import (
    Analysis,
    MediaTag,
    ModerationDecision,
    ModerationStatus,
    ReviewClaim,
)
from django_cloudinary_analysis.querysets import object_pairs

if TYPE_CHECKING:
    from django.db.models import Model, QuerySet

OPEN_STATUSES = (ModerationStatus.REVIEW, ModerationStatus.PENDING)
#: The most open items the queue looks at for one page (filters, overview).
QUEUE_WINDOW = 500

AGE_CHOICES = [
    ("1h", _("older than an hour"), timedelta(hours=1)),
    ("1d", _("older than a day"), timedelta(days=1)),
    ("7d", _("older than a week"), timedelta(days=7)),
]
BAND_CHOICES = [
    ("low", _("labels below 0.5"), (0.0, 0.5)),
    ("mid", _("labels 0.5 to 0.8"), (0.5, 0.8)),
    ("high", _("labels 0.8 and above"), (0.8, 1.01)),
]
REASON_CHOICES = [
    ("question_yes", _("a moderation question answered yes")),
    ("question_unknown", _("an unsure moderation answer")),
    ("label", _("a label rule")),
    ("analysis_not_succeeded", _("a failed or skipped analysis")),
    ("content_changed", _("new content")),
]


def key_text(key: ObjectKey) -> str:
    """``"<content type id>:<object id>"``, the item key in forms."""
    return f"{key[0]}:{key[1]}"


def parse_key(text: str) -> ObjectKey | None:
    """The inverse of :func:`key_text`; None for garbage."""
    ct_id, sep, object_id = text.partition(":")
    if not sep or not ct_id.isdigit() or not object_id:
        return None
    return (int(ct_id), object_id)


#: A condition matching rows of any of the (content type, object) keys.
pairs = object_pairs


@dataclass
class Filters:
    """The workspace's filters, read from the query string."""

    model: int | None = None
    reason: str = ""
    age: str = ""
    band: str = ""
    reviewer: int | None = None

    @classmethod
    def from_query(cls, query: Any) -> Filters:
        """Parse ``request.GET``; unknown values are ignored."""

        def number(name: str) -> int | None:
            value = query.get(name, "")
            return int(value) if value.isdigit() else None

        reason = query.get("reason", "")
        age = query.get("age", "")
        band = query.get("band", "")
        return cls(
            model=number("model"),
            reason=reason if reason in dict((r, 1) for r, _l in REASON_CHOICES) else "",
            age=age if age in {a for a, _l, _d in AGE_CHOICES} else "",
            band=band if band in {b for b, _l, _r in BAND_CHOICES} else "",
            reviewer=number("reviewer"),
        )

    def matches(self, reasons: Any) -> bool:
        """Whether a decision's reasons pass the reason and band filters."""
        items = [r for r in reasons or [] if isinstance(r, dict)]
        if self.reason and not any(r.get("rule") == self.reason for r in items):
            return False
        if self.band:
            low, high = next(r for b, _l, r in BAND_CHOICES if b == self.band)
            scores = [
                float(r["confidence"])
                for r in items
                if r.get("rule") == "label" and r.get("confidence") is not None
            ]
            if not scores or not low <= max(scores) < high:
                return False
        return True


@dataclass
class QueueRow:
    """One open item of the queue."""

    key: ObjectKey
    decision_id: int
    status: str
    reasons: list[Any]
    decided_at: Any
    holder: ReviewClaim | None = None


def open_queue(
    filters: Filters, claims: dict[ObjectKey, ReviewClaim]
) -> list[QueueRow]:
    """The current open verdicts, review first, oldest first, filtered."""
    types = [content_type_for(m).pk for m in media_models()]
    if filters.model is not None:
        types = [t for t in types if t == filters.model]
    rows: QuerySet = ModerationDecision.objects.current().filter(
        status__in=OPEN_STATUSES, content_type_id__in=types
    )
    if filters.age:
        age = next(d for a, _l, d in AGE_CHOICES if a == filters.age)
        rows = rows.filter(decided_at__lte=timezone.now() - age)
    rows = rows.order_by(QUEUE_RANK.asc(), "decided_at", "pk").values_list(
        "pk", "content_type_id", "object_id", "status", "reasons", "decided_at"
    )[:QUEUE_WINDOW]
    queue = []
    for pk, ct_id, object_id, status, reasons, decided_at in rows:
        if not filters.matches(reasons):
            continue
        key = (ct_id, object_id)
        holder = claims.get(key)
        if filters.reviewer is not None and (
            holder is None or holder.claimed_by_id != filters.reviewer
        ):
            continue
        queue.append(QueueRow(key, pk, status, reasons or [], decided_at, holder))
    return queue


def live_claims() -> dict[ObjectKey, ReviewClaim]:
    """Every live claim with its reviewer (few: reviewers times batch)."""
    claims = ReviewClaim.objects.live().select_related("claimed_by")
    return {(c.content_type_id, c.object_id): c for c in claims}


@dataclass
class ItemData:
    """Everything one screen of the workspace shows about one object."""

    row: QueueRow
    obj: Model
    analyses: list[Analysis] = field(default_factory=list)
    tags: list[MediaTag] = field(default_factory=list)
    history: list[ModerationDecision] = field(default_factory=list)
    siblings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def answers(self) -> list[tuple[str, str]]:
        """Moderation questions and their answers."""
        found = []
        for analysis in self.analyses:
            for question, answer in (
                (analysis.result or {}).get("answers") or {}
            ).items():
                found.append((str(question), str(answer)))
        return found

    @property
    def caption(self) -> str:
        """The first caption of the current analyses."""
        for analysis in self.analyses:
            caption = (analysis.result or {}).get("caption")
            if caption:
                return str(caption)
        return ""

    @property
    def quality(self) -> dict[str, Any] | None:
        """The image quality result, if analysed."""
        for analysis in self.analyses:
            quality = (analysis.result or {}).get("quality")
            if quality:
                return dict(quality)
        return None

    @property
    def has_yes(self) -> bool:
        """Whether a moderation question was answered "yes"."""
        return any(answer == "yes" for _q, answer in self.answers)


def load_items(rows: list[QueueRow], tag_limit: int = 12) -> list[ItemData]:
    """Load the objects and their evidence for ``rows`` in a few queries."""
    objects = load_objects(r.key for r in rows)
    items = [ItemData(r, objects[r.key]) for r in rows if r.key in objects]
    if not items:
        return items
    keys = [i.row.key for i in items]
    # The tags come below, a few per object: not every tag of every analysis.
    analyses = services.current_analyses_many((i.obj for i in items), tags=False)
    tags = MediaTag.objects.by_object(keys, limit=tag_limit)
    history: dict[ObjectKey, list[ModerationDecision]] = defaultdict(list)
    for decision in (
        ModerationDecision.objects.filter(pairs(keys))
        .select_related("decided_by")
        .order_by("-decided_at", "-pk")
    ):
        history[(decision.content_type_id, decision.object_id)].append(decision)
    siblings = same_content(
        {
            key: {a.content_key for a in found if a.content_key}
            for key, found in analyses.items()
        }
    )
    for item in items:
        key = item.row.key
        item.analyses = analyses.get(key, [])
        item.tags = tags.get(key, [])
        item.history = history.get(key, [])
        item.siblings = siblings.get(key, [])
    return items


def same_content(
    content_keys: dict[ObjectKey, set[str]], limit: int = 10
) -> dict[ObjectKey, list[dict[str, Any]]]:
    """Other objects analysed with the same content, with their current verdicts."""
    wanted = set().union(*content_keys.values()) if content_keys else set()
    if not wanted:
        return {}
    owners: dict[str, set[ObjectKey]] = defaultdict(set)
    for ct_id, object_id, content_key in (
        Analysis.objects.filter(content_key__in=sorted(wanted))
        .values_list("content_type_id", "object_id", "content_key")
        .distinct()
    ):
        owners[content_key].add((ct_id, object_id))
    others = set().union(*owners.values())
    verdicts = {
        (d.content_type_id, d.object_id): d
        for d in ModerationDecision.objects.current()
        .filter(pairs(sorted(others)))
        .select_related("decided_by", "content_type")
    }
    found: dict[ObjectKey, list[dict[str, Any]]] = {}
    for key, keys in content_keys.items():
        related = (
            sorted(set().union(*(owners[k] for k in keys)) - {key}) if keys else []
        )
        found[key] = [
            {"key": other, "decision": verdicts.get(other)} for other in related[:limit]
        ]
    return found
