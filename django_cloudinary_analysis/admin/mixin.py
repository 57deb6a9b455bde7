"""``AnalyzedMediaAdmin``: columns, filter, inlines and actions for site models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.template.response import TemplateResponse
from django.utils.safestring import SafeString
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from django_cloudinary_analysis.admin.actions import (
    ReanalyzeForm,
    ReviewForm,
    confirmation_page,
    decide_objects,
    reject_with_note,
    schedule_and_report,
    type_choices,
)
from django_cloudinary_analysis.admin.changelists import DecoratedChangeList
from django_cloudinary_analysis.admin.display import (
    MediaAdminBase,
    is_sensitive,
    tags_html,
    thumbnail_html,
    verdict_badge,
)
from django_cloudinary_analysis.admin.inlines import (
    AnalysisInline,
    MediaTagInline,
    ModerationDecisionInline,
)
from django_cloudinary_analysis.mixins import content_type_for
from django_cloudinary_analysis.models import MediaTag

if TYPE_CHECKING:
    from django.contrib.admin.sites import AdminSite
    from django.db.models import Model
    from django.http import HttpRequest


class AnalyzedMediaAdmin(MediaAdminBase):
    """Columns, a filter, inlines and actions for models using ``AnalyzedMedia``.

    Use it before ``ModelAdmin``::

        @admin.register(Photo)
        class PhotoAdmin(AnalyzedMediaAdmin, admin.ModelAdmin):
            list_display = ["title", "analysis_thumbnail", "moderation_badge",
                            "top_tags"]

    It adds the actions (re-analyse, approve, reject), a ``moderation_status``
    list filter and read-only inlines of analyses, tags and verdicts; the
    columns are opt-in through ``list_display`` (the default shows them all).
    """

    list_display: Sequence[Any] = (
        "__str__",
        "analysis_thumbnail",
        "moderation_badge",
        "top_tags",
    )
    #: How many tags the ``top_tags`` column shows.
    top_tags_count = 5
    #: Width and height of the ``analysis_thumbnail`` column, in CSS pixels.
    thumbnail_size = 64
    #: The read-only inlines appended on the change page.
    analysis_inlines: Sequence[type[admin.options.InlineModelAdmin]] = (
        AnalysisInline,
        MediaTagInline,
        ModerationDecisionInline,
    )
    analysis_actions = ("reanalyze_selected", "approve_selected", "reject_selected")

    model: type[Model]
    admin_site: AdminSite
    actions: Sequence[Any] | None

    def __init__(self, model: type[Model], admin_site: AdminSite) -> None:
        super().__init__(model, admin_site)  # type: ignore[call-arg]
        # Add ours to the site's own actions; ``actions = None`` turns all off.
        if self.actions is not None:
            own = list(self.actions)
            self.actions = own + [a for a in self.analysis_actions if a not in own]

    def get_list_filter(self, request: HttpRequest) -> Sequence[Any]:
        """The site's filters plus one on the moderation status."""
        filters = list(super().get_list_filter(request))  # type: ignore[misc]
        if "moderation_status" not in filters:
            filters.append("moderation_status")
        return filters

    def get_inlines(self, request: HttpRequest, obj: Model | None) -> list[Any]:
        """The site's inlines plus analyses, tags and verdicts on change pages."""
        inlines = list(super().get_inlines(request, obj))  # type: ignore[misc]
        if obj is not None:
            inlines.extend(i for i in self.analysis_inlines if i not in inlines)
        return inlines

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        """Use the ChangeList that loads each page's tags in one query."""
        return DecoratedChangeList

    def decorate_results(self, request: HttpRequest, rows: list[Any]) -> None:
        """Load the top tags of every object on the page in one query."""
        if not rows:
            return
        ct_id = content_type_for(self.model).pk
        tops = MediaTag.objects.by_object(
            ((ct_id, str(row.pk)) for row in rows), limit=self.top_tags_count
        )
        for row in rows:
            tags = tops.get((ct_id, str(row.pk)), [])
            row._dca_top_tags = [(t.label, t.confidence) for t in tags]

    # -- columns --

    @admin.display(description=_("image"))
    def analysis_thumbnail(self, obj: Model) -> SafeString:
        """The first configured image, lazily loaded."""
        status = str(getattr(obj, "moderation_status", ""))
        return thumbnail_html(obj, self.thumbnail_size, sensitive=is_sensitive(status))

    @admin.display(description=_("verdict"), ordering="moderation_status")
    def moderation_badge(self, obj: Model) -> SafeString:
        """The moderation verdict as a coloured badge."""
        return verdict_badge(getattr(obj, "moderation_status", ""))

    @admin.display(description=_("top tags"))
    def top_tags(self, obj: Model) -> SafeString:
        """The most confident tags (loaded for the whole page at once)."""
        if not hasattr(obj, "_dca_top_tags"):  # outside a changelist: one query
            self.decorate_results(None, [obj])  # type: ignore[arg-type]
        return tags_html(obj._dca_top_tags)  # type: ignore[attr-defined]

    # -- actions --

    @admin.action(
        description=_("Re-run the analyses of the selected objects…"),
        permissions=["reanalyze"],
    )
    def reanalyze_selected(
        self, request: HttpRequest, queryset: QuerySet
    ) -> TemplateResponse | None:
        """Pick analysis types and force on an intermediate page, then schedule."""
        choices = type_choices(self.model)
        if request.POST.get("post"):
            form = ReanalyzeForm(request.POST, type_choices=choices)
            if form.is_valid():
                options = {
                    "types": form.cleaned_data["types"],
                    "force": form.cleaned_data["force"],
                }
                schedule_and_report(self, request, ((o, options) for o in queryset))
                return None
        else:
            form = ReanalyzeForm(type_choices=choices)
        return confirmation_page(
            self,  # type: ignore[arg-type]
            request,
            queryset,
            template="admin/cloudinary_analysis/reanalyze_confirmation.html",
            action="reanalyze_selected",
            title=gettext("Re-run analyses"),
            objects=list(queryset),
            form=form,
        )

    @admin.action(description=_("Approve the selected objects"), permissions=["review"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        """Approve each selected object by hand."""
        decide_objects(self, request, list(queryset), ReviewForm.APPROVE)

    @admin.action(description=_("Reject the selected objects…"), permissions=["review"])
    def reject_selected(
        self, request: HttpRequest, queryset: QuerySet
    ) -> TemplateResponse | None:
        """Ask for a note on an intermediate page, then reject each object."""
        return reject_with_note(
            self, request, queryset, list(queryset), "reject_selected"
        )
