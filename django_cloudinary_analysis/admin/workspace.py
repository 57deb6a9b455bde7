"""The reviewer's workspace: one screen per item, keyboard first, claims.

``WorkspaceView`` claims the next open items for the reviewer and shows
them; ``DecideView``, ``UndoView`` and ``BulkView`` take the forms (or the
script's requests, answered in JSON). Every decision goes through
:mod:`django_cloudinary_analysis.review`, which calls the services.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext, ngettext
from django.views import View

from django_cloudinary_analysis import review
from django_cloudinary_analysis.admin.changelists import ObjectKey, load_objects
from django_cloudinary_analysis.admin.display import (
    acting_user,
    admin_change_url,
    image_url,
    is_sensitive,
    reasons_html,
    verdict_badge,
    verdict_badge_label,
)
from django_cloudinary_analysis.admin.workspace_data import (
    AGE_CHOICES,
    BAND_CHOICES,
    REASON_CHOICES,
    Filters,
    ItemData,
    QueueRow,
    key_text,
    live_claims,
    load_items,
    open_queue,
    parse_key,
)
from django_cloudinary_analysis.exceptions import AnalysisError
from django_cloudinary_analysis.mixins import content_type_for, media_models
from django_cloudinary_analysis.models import ReviewClaim

if TYPE_CHECKING:
    from django_cloudinary_analysis.admin.queue import ModerationDecisionAdmin

VERDICTS = ("approve", "reject")


class WorkspaceMixin:
    """Shared plumbing of the workspace's views."""

    model_admin: ModerationDecisionAdmin = None  # type: ignore[assignment]
    request: HttpRequest

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        """Needs view permission on decisions; posts need ``review_media``."""
        if not self.model_admin.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST" and not self.model_admin.has_review_permission(
            request
        ):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]

    def url(self, name: str) -> str:
        """A workspace URL by its suffix (``workspace``, ``workspace_decide``…)."""
        opts = self.model_admin.model._meta
        site = self.model_admin.admin_site.name
        return reverse(f"{site}:{opts.app_label}_{opts.model_name}_{name}")

    def wants_json(self) -> bool:
        """The script asks for JSON; a plain form post gets a redirect."""
        return "application/json" in self.request.headers.get("Accept", "")

    def back(self) -> HttpResponseRedirect:
        """Back to the workspace, keeping its filters."""
        target = self.request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(
            target, {self.request.get_host()}, self.request.is_secure()
        ):
            target = self.url("workspace")
        return HttpResponseRedirect(target)

    def load(self, key: ObjectKey | None) -> Model | None:
        """The moderated object behind a key, or None."""
        if key is None:
            return None
        types = {content_type_for(m).pk for m in media_models()}
        if key[0] not in types:
            return None
        return load_objects([key]).get(key)

    def held_by_other(self, key: ObjectKey) -> ReviewClaim | None:
        """Another reviewer's live claim on ``key``, if any."""
        return (
            ReviewClaim.objects.live()
            .filter(content_type_id=key[0], object_id=key[1])
            .exclude(claimed_by=self.request.user.pk)
            .select_related("claimed_by")
            .first()
        )


class WorkspaceView(WorkspaceMixin, View):
    """Claim the next open items and show them, one screen each."""

    template_name = "admin/cloudinary_analysis/workspace.html"
    #: How many items one reviewer holds at a time.
    batch_size = 10
    preview_size = 360
    overview_limit = 100

    def get(self, request: HttpRequest) -> HttpResponse:
        """The workspace page."""
        filters = Filters.from_query(request.GET)
        can_review = self.model_admin.has_review_permission(request)
        claims = live_claims()
        queue = open_queue(filters, claims)
        mine = self.claim(queue, claims) if can_review else queue[: self.batch_size]
        items = load_items(mine)
        return TemplateResponse(
            request, self.template_name, self.context(filters, queue, items, can_review)
        )

    def claim(
        self, queue: list[QueueRow], claims: dict[ObjectKey, ReviewClaim]
    ) -> list[QueueRow]:
        """Keep (and extend) this reviewer's claims; claim more up to a batch."""
        user = self.request.user
        held = {r.key for r in queue if r.holder and r.holder.claimed_by_id == user.pk}
        if held:
            review.extend_claims(user)  # type: ignore[arg-type]
        wanted = self.batch_size - len(held)
        won: set[ObjectKey] = set()
        for row in queue:
            if len(won) >= wanted:
                break
            if row.holder is None:
                won.update(review.claim(user, [row.key]))  # type: ignore[arg-type]
        mine = [r for r in queue if r.key in held or r.key in won]
        return mine[: self.batch_size]

    def context(
        self,
        filters: Filters,
        queue: list[QueueRow],
        items: list[ItemData],
        can_review: bool,
    ) -> dict[str, Any]:
        """The template's context."""
        request = self.request
        site, opts = self.model_admin.admin_site, self.model_admin.model._meta
        shown = [self.item_context(i) for i in items]
        reviewers = get_user_model()._default_manager.filter(
            pk__in={r.holder.claimed_by_id for r in queue if r.holder}
        )
        return {
            **site.each_context(request),
            "title": gettext("Review workspace"),
            "subtitle": None,
            "opts": opts,
            "app_label": opts.app_label,
            "items": shown,
            "clean_keys": [i["key"] for i in shown if not i["has_yes"]],
            "overview": [
                {
                    "row": row,
                    "label": f"{row.key[0]}:{row.key[1]}",
                    "badge": verdict_badge(row.status),
                    "url": self.model_admin.review_url(*row.key),
                }
                for row in queue[: self.overview_limit]
            ],
            "queue_size": len(queue),
            "can_review": can_review,
            "filters": filters,
            "models": [
                (content_type_for(m).pk, m._meta.verbose_name) for m in media_models()
            ],
            "reason_choices": REASON_CHOICES,
            "age_choices": [(a, label) for a, label, _d in AGE_CHOICES],
            "band_choices": [(b, label) for b, label, _r in BAND_CHOICES],
            "reviewers": list(reviewers),
            "next": request.get_full_path(),
            "decide_url": self.url("workspace_decide"),
            "undo_url": self.url("workspace_undo"),
            "bulk_url": self.url("workspace_bulk"),
            "changelist_url": self.model_admin.changelist_url(request),
            "undo_seconds": int(review.UNDO_WINDOW.total_seconds()),
            "media": self.model_admin.media,
        }

    def item_context(self, item: ItemData) -> dict[str, Any]:
        """One screen's worth of one item."""
        row, obj = item.row, item.obj
        return {
            "key": key_text(row.key),
            "object": obj,
            "object_url": admin_change_url(
                self.model_admin.admin_site, self.request, obj
            ),
            "review_url": self.model_admin.review_url(*row.key),
            "content_type": content_type_for(obj),
            "image": image_url(obj, self.preview_size, crop="limit"),
            "sensitive": is_sensitive(row.status, row.reasons) or item.has_yes,
            "has_yes": item.has_yes,
            "badge": verdict_badge(row.status),
            "reasons": reasons_html(row.reasons),
            "answers": item.answers,
            "tags": item.tags,
            "caption": item.caption,
            "quality": item.quality,
            "history": [
                {"decision": d, "badge": verdict_badge(d.status)} for d in item.history
            ],
            "siblings": [self.sibling_context(s) for s in item.siblings],
        }

    def sibling_context(self, sibling: dict[str, Any]) -> dict[str, Any]:
        """Another object with the same content, with its current verdict."""
        decision, (ct_id, object_id) = sibling["decision"], sibling["key"]
        kind = decision.content_type if decision else ct_id
        return {
            "label": f"{kind} #{object_id}",
            "badge": verdict_badge(decision.status) if decision else "",
            "url": self.model_admin.review_url(ct_id, object_id),
        }


class DecideView(WorkspaceMixin, View):
    """Approve or reject one item (a form post, or the script in JSON)."""

    def post(self, request: HttpRequest) -> HttpResponse:
        """Decide through the services; release the claim."""
        key = parse_key(request.POST.get("key", ""))
        verdict = request.POST.get("verdict", "")
        obj = self.load(key)
        if obj is None or key is None or verdict not in VERDICTS:
            return self.fail(gettext("No such item or verdict."), 400)
        other = self.held_by_other(key)
        if other is not None:
            return self.fail(
                gettext("%(user)s is reviewing this item.")
                % {"user": other.claimed_by},
                409,
            )
        note = request.POST.get("note", "")[:2000]
        try:
            decision = review.decide(
                obj, verdict, user=acting_user(request), note=note, key=key
            )
        except AnalysisError as exc:
            return self.fail(
                gettext("%(object)s could not be updated: %(error)s")
                % {"object": obj, "error": exc},
                400,
            )
        status = str(getattr(obj, "moderation_status", ""))
        text = gettext("%(object)s is now %(verdict)s.") % {
            "object": obj,
            "verdict": verdict_badge_label(status),
        }
        if self.wants_json():
            return JsonResponse(
                {
                    "ok": True,
                    "decision": decision.pk if decision else None,
                    "status": status,
                    "message": text,
                }
            )
        messages.success(request, text)
        return self.back()

    def fail(self, text: str, status: int) -> HttpResponse:
        """Report a refused decision."""
        if self.wants_json():
            return JsonResponse({"ok": False, "message": text}, status=status)
        messages.error(self.request, text)
        return self.back()


class UndoView(DecideView):
    """Undo the reviewer's last decision on one item, within the window."""

    def post(self, request: HttpRequest) -> HttpResponse:
        """Restore the previous verdict through the services."""
        key = parse_key(request.POST.get("key", ""))
        obj = self.load(key)
        decision = request.POST.get("decision", "")
        if obj is None or key is None or not decision.isdigit():
            return self.fail(gettext("No such item or decision."), 400)
        try:
            review.undo(obj, int(decision), user=request.user)  # type: ignore[arg-type]
        except AnalysisError as exc:
            return self.fail(str(exc), 409)
        review.claim(request.user, [key])  # type: ignore[arg-type]
        status = str(getattr(obj, "moderation_status", ""))
        text = gettext("Undone: %(object)s is back to “%(verdict)s”.") % {
            "object": obj,
            "verdict": verdict_badge_label(status),
        }
        if self.wants_json():
            return JsonResponse({"ok": True, "status": status, "message": text})
        messages.success(request, text)
        return self.back()


class BulkView(DecideView):
    """Decide many items at once with one note."""

    def post(self, request: HttpRequest) -> HttpResponse:
        """Approve or reject the chosen (or the clean visible) items."""
        verdict = request.POST.get("verdict", "")
        if verdict == "approve_clean":
            texts, verdict = self.clean(request.POST.getlist("clean_keys")), "approve"
        else:
            texts = request.POST.getlist("keys")
        if verdict not in VERDICTS:
            return self.fail(gettext("No such verdict."), 400)
        note = request.POST.get("note", "")[:2000]
        done = 0
        for text in texts:
            key = parse_key(text)
            obj = self.load(key)
            if obj is None or key is None:
                continue
            other = self.held_by_other(key)
            if other is not None:
                messages.warning(
                    request,
                    gettext("%(object)s was skipped: %(user)s is reviewing it.")
                    % {"object": obj, "user": other.claimed_by},
                )
                continue
            try:
                review.decide(
                    obj, verdict, user=acting_user(request), note=note, key=key
                )
            except AnalysisError as exc:
                messages.error(
                    request,
                    gettext("%(object)s could not be updated: %(error)s")
                    % {"object": obj, "error": exc},
                )
                continue
            done += 1
        text = (
            ngettext("Approved %(count)d object.", "Approved %(count)d objects.", done)
            if verdict == "approve"
            else ngettext(
                "Rejected %(count)d object.", "Rejected %(count)d objects.", done
            )
        ) % {"count": done}
        (messages.success if done else messages.warning)(request, text)
        return self.back()

    def clean(self, texts: list[str]) -> list[str]:
        """The keys whose current analyses answered no question "yes"."""
        keys = [key for key in map(parse_key, texts) if key is not None]
        rows = [QueueRow(key, 0, "", [], None) for key in keys]
        return [key_text(i.row.key) for i in load_items(rows) if not i.has_yes]
