"""The per-object review page: image, reasons, analyses, history; decide."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext
from django.views import View

from django_cloudinary_analysis import review, services
from django_cloudinary_analysis.admin.actions import ReviewForm, report_error
from django_cloudinary_analysis.admin.changelists import load_objects
from django_cloudinary_analysis.admin.display import (
    FOLLOWS_RELATED,
    acting_user,
    admin_change_url,
    analysis_status_badge,
    is_sensitive,
    reasons_html,
    tags_html,
    thumbnail_html,
    verdict_badge,
    verdict_badge_label,
)
from django_cloudinary_analysis.exceptions import AnalysisError
from django_cloudinary_analysis.models import Analysis, MediaTag, ModerationDecision
from django_cloudinary_analysis.moderation import short_key

if TYPE_CHECKING:
    from django_cloudinary_analysis.admin.queue import ModerationDecisionAdmin


class ReviewView(View):
    """Show one object's image, reasons, analyses and history; decide.

    Mounted by :class:`ModerationDecisionAdmin` behind ``admin_view``; it
    needs view permission on decisions, and ``review_media`` to post.
    """

    model_admin: ModerationDecisionAdmin = None  # type: ignore[assignment]
    template_name = "admin/cloudinary_analysis/review.html"
    preview_size = 240
    tag_limit = 30

    def setup(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        """Check view permission and load the object named in the URL."""
        super().setup(request, *args, **kwargs)
        if not self.model_admin.has_view_permission(request):
            raise PermissionDenied
        try:
            self.content_type = ContentType.objects.get_for_id(
                kwargs["content_type_id"]
            )
        except ContentType.DoesNotExist:
            raise Http404(gettext("No such content type.")) from None
        self.object_id = unquote(kwargs["object_id"])
        model = self.content_type.model_class()
        if model is None or "moderation_status" not in {
            f.name for f in model._meta.concrete_fields
        }:
            raise Http404(gettext("This kind of object is not moderated."))
        key = (self.content_type.pk, self.object_id)
        obj = load_objects([key]).get(key)
        if obj is None:
            raise Http404(gettext("The object no longer exists."))
        self.object: Model = obj
        self.can_review = self.model_admin.has_review_permission(request)

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """The review page with an empty decision form."""
        return self.render(ReviewForm())

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        """Apply a decision through services, then go back to the queue."""
        if not self.can_review:
            raise PermissionDenied
        form = ReviewForm(request.POST)
        if not form.is_valid():
            return self.render(form)
        self.apply(form.cleaned_data["verdict"], form.cleaned_data["note"])
        return HttpResponseRedirect(self.model_admin.changelist_url(request))

    def apply(self, verdict: str, note: str) -> None:
        """Approve, reject or release the object (and its claim); report."""
        request, obj = self.request, self.object
        key = (self.content_type.pk, self.object_id)
        try:
            review.decide(obj, verdict, user=acting_user(request), note=note, key=key)
        except AnalysisError as exc:
            report_error(
                self.model_admin,
                request,
                obj,
                exc,
                gettext("%(object)s could not be updated: %(error)s"),
            )
            return
        obj.refresh_from_db(fields=["moderation_status"])
        status = getattr(obj, "moderation_status", "")
        self.model_admin.message_user(
            request,
            gettext("%(object)s is now %(verdict)s.")
            % {"object": obj, "verdict": verdict_badge_label(status)},
            messages.SUCCESS,
        )

    def analysis_url(self, analysis: Analysis) -> str | None:
        """The analysis's change page, if the user may see analyses."""
        site = self.model_admin.admin_site
        model_admin = site._registry.get(Analysis)
        if model_admin is None or not model_admin.has_view_permission(self.request):
            return None
        return reverse(
            f"{site.name}:cloudinary_analysis_analysis_change", args=[analysis.pk]
        )

    def follows_context(
        self, decision: ModerationDecision | None
    ) -> dict[str, Any] | None:
        """Where a followed verdict came from: the decision, its page, the key."""
        if decision is None or decision.follows is None:
            return None
        origin = decision.follows
        return {
            "decision": origin,
            "badge": verdict_badge(origin.status),
            "object": f"{origin.content_type} #{origin.object_id}",
            "url": self.model_admin.review_url(
                origin.content_type_id, origin.object_id
            ),
            "content_key": short_key(decision.content_key),
        }

    def get_context_data(self, form: ReviewForm) -> dict[str, Any]:
        """Everything the template shows about the object."""
        request, obj = self.request, self.object
        site, opts = self.model_admin.admin_site, self.model_admin.model._meta
        history = list(
            ModerationDecision.objects.filter(
                content_type=self.content_type, object_id=self.object_id
            ).select_related("decided_by", *FOLLOWS_RELATED)
        )
        key = (self.content_type.pk, self.object_id)
        tags = MediaTag.objects.by_object([key], limit=self.tag_limit)[key]
        current = history[0] if history else None
        return {
            **site.each_context(request),
            "title": gettext("Review %(object)s") % {"object": obj},
            "subtitle": None,
            "opts": opts,
            "app_label": opts.app_label,
            "object": obj,
            "object_url": admin_change_url(site, request, obj),
            "content_type": self.content_type,
            "thumbnail": thumbnail_html(
                obj,
                self.preview_size,
                sensitive=is_sensitive(
                    current.status if current else "",
                    current.reasons if current else [],
                ),
            ),
            "verdict": verdict_badge(
                current.status
                if current
                else str(getattr(obj, "moderation_status", ""))
            ),
            "current": current,
            "current_reasons": reasons_html([], decision=current)
            if current
            else reasons_html([]),
            "follows": self.follows_context(current),
            "pinned": bool(current and current.pins_verdict),
            "history": [
                {
                    "decision": d,
                    "badge": verdict_badge(d.status),
                    "reasons": reasons_html([], decision=d),
                }
                for d in history
            ],
            "analyses": [
                {
                    "analysis": a,
                    "status": analysis_status_badge(a),
                    "url": self.analysis_url(a),
                }
                for a in services.current_analyses(obj)
            ],
            "tags": tags_html([(t.label, t.confidence) for t in tags]),
            "form": form,
            "can_review": self.can_review,
            "changelist_url": self.model_admin.changelist_url(request),
            "media": self.model_admin.media,
            "verdicts": ReviewForm,
        }

    def render(self, form: ReviewForm) -> TemplateResponse:
        """Render the page around ``form``."""
        return TemplateResponse(
            self.request, self.template_name, self.get_context_data(form)
        )
