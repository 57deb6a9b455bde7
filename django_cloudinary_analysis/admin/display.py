"""Rendering helpers and the columns shared by the app's admins and inlines.

Everything returns escaped HTML (``format_html``) or plain text; nothing
here queries the database except where a docstring says so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Case, IntegerField, Value, When
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from django_cloudinary_analysis import moderation
from django_cloudinary_analysis.mixins import analysis_config
from django_cloudinary_analysis.models import (
    REANALYZE_PERMISSION,
    REVIEW_PERMISSION,
    Analysis,
    AnalysisStatus,
    ModerationDecision,
    ModerationStatus,
)
from django_cloudinary_analysis.sources import is_cloudinary_resource

#: What to select with decisions so a followed verdict is named without a
#: query per row (see :func:`reasons_html`).
FOLLOWS_RELATED = ("follows__decided_by", "follows__content_type")

if TYPE_CHECKING:
    from django.contrib.admin.sites import AdminSite
    from django.db.models import Model
    from django.http import HttpRequest

CSS = "cloudinary_analysis/admin.css"
EMPTY = "–"

#: Open verdicts first: "needs review", then "pending", then the decided ones.
QUEUE_RANK = Case(
    When(status=ModerationStatus.REVIEW, then=Value(0)),
    When(status=ModerationStatus.PENDING, then=Value(1)),
    default=Value(2),
    output_field=IntegerField(),
)


def verdict_badge_label(status: str) -> str:
    """The translated name of a verdict (the raw value if unknown)."""
    try:
        return str(ModerationStatus(status).label)
    except ValueError:
        return status


def decided_by_kind_label(kind: str) -> str:
    """The translated name of who decided (the raw value if unknown)."""
    try:
        return str(ModerationDecision.DecidedByKind(kind).label)
    except ValueError:
        return kind


def acting_user(request: HttpRequest) -> AbstractBaseUser | None:
    """The user a decision is recorded for."""
    user = request.user
    return user if isinstance(user, AbstractBaseUser) else None


def verdict_badge(status: str) -> SafeString:
    """A coloured badge for a moderation verdict."""
    try:
        label = ModerationStatus(status).label
    except ValueError:
        return format_html('<span class="dca-badge">{}</span>', status or EMPTY)
    return format_html('<span class="dca-badge dca-badge--{}">{}</span>', status, label)


def analysis_status_badge(analysis: Analysis, *, reason_chars: int = 120) -> SafeString:
    """A coloured badge for an analysis status, followed by the reason if any."""
    try:
        label = AnalysisStatus(analysis.status).label
        css = analysis.status
    except ValueError:
        label, css = analysis.status, "unknown"
    badge = format_html('<span class="dca-badge dca-badge--{}">{}</span>', css, label)
    if not analysis.error_message:
        return badge
    return format_html(
        '{} <span class="dca-reason" title="{}">{}</span>',
        badge,
        analysis.error_message,
        Truncator(analysis.error_message).chars(reason_chars),
    )


def pretty_json(value: Any) -> SafeString:
    """Indented JSON in an escaped ``<pre>`` block."""
    if value is None:
        return format_html("{}", EMPTY)
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return format_html('<pre class="dca-json">{}</pre>', text)


def reasons_html(
    reasons: Any,
    limit: int | None = None,
    *,
    decision: ModerationDecision | None = None,
) -> SafeString:
    """A decision's reasons as an escaped list, worded by the policy.

    Given the ``decision`` (its ``follows`` selected with the reviewer and
    content type), a followed verdict is named in full: which decision, by
    whom, on which object.
    """
    policy = moderation.get_policy()
    if decision is not None:
        items = moderation.describe_decision(decision, policy)
    else:
        items = list(reasons) if isinstance(reasons, (list, tuple)) else [reasons]
        items = [moderation.describe(r, policy) for r in items if r]
    if not items:
        return format_html("{}", EMPTY)
    shown = items if limit is None else items[:limit]
    lines = [(text,) for text in shown]
    if len(items) > len(shown):
        more = len(items) - len(shown)
        lines.append((ngettext("and %d more", "and %d more", more) % more,))
    return format_html(
        '<ul class="dca-reasons">{}</ul>', format_html_join("", "<li>{}</li>", lines)
    )


def image_url(obj: Model, size: int, *, crop: str = "fill") -> str | None:
    """The URL of the object's first configured image that holds a file.

    Cloudinary assets get a transformation URL (``size`` CSS pixels at 2x,
    automatic format and quality), so a list never loads the original; other
    storages give the file's own URL, sized by the ``<img>`` element.
    """
    for name in analysis_config(type(obj)):
        value = getattr(obj, name, None)
        if not value:
            continue
        if is_cloudinary_resource(value):
            try:
                return str(
                    value.build_url(
                        secure=True,
                        width=size * 2,
                        height=size * 2,
                        crop=crop,
                        fetch_format="auto",
                        quality="auto",
                    )
                )
            except Exception:  # noqa: S112 - a broken asset has no thumbnail
                continue
        try:
            return str(value.url)
        except Exception:  # noqa: S112 - storages raise anything from url()
            continue
    return None


def thumbnail_url(obj: Model, size: int = 64) -> str | None:
    """A small square image URL for lists (see :func:`image_url`)."""
    return image_url(obj, size)


def is_sensitive(status: str, reasons: Any = ()) -> bool:
    """Whether a preview may be harmful: needs review, rejected, or a "yes"."""
    if status in (ModerationStatus.REVIEW, ModerationStatus.REJECTED):
        return True
    items = reasons if isinstance(reasons, (list, tuple)) else []
    return any(isinstance(r, dict) and r.get("rule") == "question_yes" for r in items)


def thumbnail_html(
    obj: Model | None, size: int = 64, *, sensitive: bool = False
) -> SafeString:
    """A lazy, fixed-size ``<img>`` of the object's first image, or a dash.

    A sensitive one is blurred until revealed: the image sits in a label
    with a checkbox, so a click or the keyboard reveals it, without script.
    """
    url = thumbnail_url(obj, size) if obj is not None else None
    if not url:
        return format_html("{}", EMPTY)
    img = format_html(
        '<img class="dca-thumb" src="{}" alt="" loading="lazy" width="{}" height="{}">',
        url,
        size,
        size,
    )
    if not sensitive:
        return img
    return format_html(
        '<label class="dca-preview dca-sensitive" title="{}">'
        '<input type="checkbox" class="dca-reveal-toggle" aria-label="{}">{}</label>',
        gettext("May be harmful: click to show"),
        gettext("Show the image"),
        img,
    )


def tags_html(tags: Sequence[tuple[str, float | None]]) -> SafeString:
    """Tag chips with their confidence."""
    if not tags:
        return format_html("{}", EMPTY)
    return format_html_join(
        " ",
        '<span class="dca-tag" title="{}">{}</span>',
        (
            (f"{confidence:.2f}" if confidence is not None else "", label)
            for label, confidence in tags
        ),
    )


def admin_change_url(
    admin_site: AdminSite, request: HttpRequest, obj: Model
) -> str | None:
    """The object's change page on ``admin_site``, if the user may open it."""
    model_admin = admin_site._registry.get(type(obj))
    # Model-level, as Django's own changelist links: object-level checks
    # could query once per row.
    if model_admin is None or not model_admin.has_view_or_change_permission(request):
        return None
    opts = obj._meta
    try:
        return reverse(
            f"{admin_site.name}:{opts.app_label}_{opts.model_name}_change",
            args=[quote(obj.pk)],
        )
    except NoReverseMatch:
        return None


def object_link(obj: Any) -> SafeString:
    """Link a row's object (loaded by ``decorate_results``)."""
    target = getattr(obj, "_dca_object", None)
    if target is None:
        return format_html(
            '{} <span class="dca-muted">#{} {}</span>',
            obj.content_type,
            obj.object_id,
            gettext("(deleted)"),
        )
    url = getattr(obj, "_dca_object_url", None)
    if url:
        return format_html('<a href="{}">{}</a>', url, target)
    return format_html("{}", target)


class MediaAdminBase:
    """The app's stylesheet and its two permissions, for every admin class."""

    @property
    def media(self) -> forms.Media:
        """The admin's media plus the badge and thumbnail styles."""
        return super().media + forms.Media(css={"all": [CSS]})  # type: ignore[misc]

    def has_review_permission(self, request: HttpRequest) -> bool:
        """Approving and rejecting needs ``cloudinary_analysis.review_media``."""
        return request.user.has_perm(REVIEW_PERMISSION)

    def has_reanalyze_permission(self, request: HttpRequest) -> bool:
        """Re-running costs API quota: ``cloudinary_analysis.reanalyze_media``."""
        return request.user.has_perm(REANALYZE_PERMISSION)


class DecisionColumns:
    """The verdict and reasons columns of a decision (list and inline)."""

    #: How many reasons the column lists before "and N more"; None for all.
    reasons_limit: int | None = None

    @admin.display(description=_("verdict"), ordering=QUEUE_RANK)
    def verdict_display(self, obj: ModerationDecision) -> SafeString:
        """The verdict as a coloured badge."""
        return verdict_badge(obj.status)

    @admin.display(description=_("reasons"))
    def reasons_display(self, obj: ModerationDecision) -> SafeString:
        """Why the verdict was reached, in words."""
        return reasons_html(obj.reasons, limit=self.reasons_limit, decision=obj)
