"""The API's viewsets: thin, every change goes through ``services``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from django_cloudinary_analysis import services
from django_cloudinary_analysis.mixins import content_type_for, media_models
from django_cloudinary_analysis.models import Analysis, ModerationDecision
from django_cloudinary_analysis.options import pk_as_text
from django_cloudinary_analysis.rest_framework import filters, pagination, parsers
from django_cloudinary_analysis.rest_framework.fields import attach_media_tags
from django_cloudinary_analysis.rest_framework.permissions import (
    REANALYZE_PERMISSION,
    REVIEW_PERMISSION,
    HasActionPermission,
    api_permission_classes,
)
from django_cloudinary_analysis.rest_framework.schema import extend_schema
from django_cloudinary_analysis.rest_framework.serializers import (
    AnalysisDetailSerializer,
    AnalysisSerializer,
    ModerationItemSerializer,
    ObjectSummarySerializer,
    ReanalyzeAnalysisSerializer,
    ReanalyzeObjectSerializer,
    ReviewSerializer,
    ScheduledSerializer,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from django.db.models import Model
    from rest_framework.parsers import BaseParser
    from rest_framework.permissions import BasePermission
    from rest_framework.request import Request
    from rest_framework.serializers import BaseSerializer

logger = logging.getLogger(__name__)


class CloudinaryAnalysisViewMixin:
    """Permissions from settings plus model permissions; visibility hook."""

    #: action name → model permissions it needs on top of the base classes
    action_permissions: dict[str, tuple[str, ...]] = {}
    #: Bounded JSON: deep or huge bodies are a 400/413, never a 500.
    parser_classes: Sequence[type[BaseParser]] = parsers.PARSER_CLASSES
    request: Any

    @property
    def pagination_class(self) -> type[Any] | None:
        """Paginated by default: the site's DRF paging, else ``API_PAGE_SIZE``."""
        return self.__dict__.get("_pagination_class", pagination.pagination_class())

    @pagination_class.setter
    def pagination_class(self, value: type[Any] | None) -> None:
        self.__dict__["_pagination_class"] = value

    def get_permissions(self) -> list[BasePermission]:
        """The configured base classes (staff by default), then action perms."""
        return [cls() for cls in api_permission_classes()] + [HasActionPermission()]

    def filter_objects(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """Limit a mixin model's queryset to what the user may see.

        Applies the ``API_OBJECT_FILTER`` setting; override in a subclass for
        a per-view rule.
        """
        hook = filters.get_object_filter()
        return queryset if hook is None else hook(self.request, queryset)

    def filters_objects(self) -> bool:
        """Whether a site rule limits the visible objects."""
        overridden = (
            type(self).filter_objects is not CloudinaryAnalysisViewMixin.filter_objects
        )
        return overridden or filters.get_object_filter() is not None

    def filter_rows(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """Limit rows keyed by (content_type, object_id) to visible objects.

        One subquery per mixin model, inside the same SQL statement.
        """
        if not self.filters_objects():
            return queryset
        condition = Q(pk__in=[])
        for model in media_models():
            ids = (
                self.filter_objects(model._default_manager.all())
                .annotate(_dca_oid=pk_as_text(model, queryset.db))
                .values("_dca_oid")
            )
            condition |= Q(content_type=content_type_for(model), object_id__in=ids)
        return queryset.filter(condition)

    def get_media_object(self, content_type: str, object_id: str) -> Model:
        """The visible mixin object named in the URL, or 404."""
        model = filters.resolve_media_model(content_type)
        if model is None:
            raise exceptions.NotFound(_("No such model using AnalyzedMedia."))
        pk = filters.parse_object_pk(model, object_id)
        obj = self.filter_objects(model._default_manager.all()).filter(pk=pk).first()
        if obj is None:
            raise exceptions.NotFound()
        return obj  # type: ignore[no-any-return]


def _scheduled_response(scheduled: list[Analysis]) -> Response:
    code: int
    if scheduled:
        detail = ngettext(
            "%(count)d analysis queued.", "%(count)d analyses queued.", len(scheduled)
        ) % {"count": len(scheduled)}
        code = status.HTTP_202_ACCEPTED
    else:
        detail = str(
            _(
                "Nothing to re-run: every selected analysis already succeeded "
                "for the current file (send force=true to run it again)."
            )
        )
        code = status.HTTP_200_OK
    body = ScheduledSerializer({"detail": detail, "scheduled": scheduled}).data
    return Response(body, status=code)


class AnalysisViewSet(CloudinaryAnalysisViewMixin, viewsets.ReadOnlyModelViewSet):
    """Analyses with their tags; re-run one."""

    serializer_class = AnalysisSerializer
    filter_backends = [filters.AnalysisFilterBackend]
    lookup_value_regex = r"[0-9]+"
    action_permissions = {"reanalyze": (REANALYZE_PERMISSION,)}

    def get_queryset(self) -> QuerySet[Analysis]:
        """Visible analyses, newest first, tags prefetched."""
        queryset = (
            Analysis.objects.select_related("content_type")
            .prefetch_related("tags")
            .order_by("-created_at", "-pk")
        )
        return self.filter_rows(queryset)

    def get_serializer_class(self) -> type[BaseSerializer]:
        """The detail view adds the raw response."""
        if self.action == "retrieve":
            return AnalysisDetailSerializer
        if self.action == "reanalyze":
            return ReanalyzeAnalysisSerializer
        return AnalysisSerializer

    @extend_schema(
        request=ReanalyzeAnalysisSerializer,
        responses={200: ScheduledSerializer, 202: ScheduledSerializer},
        summary="Re-run one analysis",
    )
    @action(detail=True, methods=["post"])
    def reanalyze(self, request: Request, pk: str | None = None) -> Response:
        """Queue this analysis's field and type again for the current file."""
        analysis = self.get_object()
        body = ReanalyzeAnalysisSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        model = analysis.content_type.model_class()
        obj = None
        if model is not None:
            obj = (
                self.filter_objects(model._default_manager.all())
                .filter(pk=analysis.object_id)
                .first()
            )
        if obj is None:
            raise exceptions.NotFound(_("The analysed object no longer exists."))
        scheduled = services.schedule(
            obj,
            fields=[analysis.field_name],
            types=[analysis.analysis_type],
            force=body.validated_data["force"],
        )
        logger.info(
            "API: %s re-ran analysis %s (%d queued)",
            request.user.pk,
            analysis.pk,
            len(scheduled),
            extra={"analysis_id": analysis.pk},
        )
        return _scheduled_response(scheduled)


class MediaObjectViewSet(CloudinaryAnalysisViewMixin, viewsets.GenericViewSet):
    """One object: its latest results, tags and verdict; re-analyse it."""

    serializer_class = ObjectSummarySerializer
    # One object per request: the site's default filters and pagination
    # do not apply.
    filter_backends: list[Any] = []
    pagination_class = None
    action_permissions = {"reanalyze": (REANALYZE_PERMISSION,)}

    def get_serializer_class(self) -> type[BaseSerializer]:
        """Request body of reanalyze, else the summary."""
        if self.action == "reanalyze":
            return ReanalyzeObjectSerializer
        return ObjectSummarySerializer

    @extend_schema(summary="Latest results, tags and verdict of one object")
    def retrieve(self, request: Request, content_type: str, object_id: str) -> Response:
        """Summarise the object's current analyses, tags and verdict."""
        obj = self.get_media_object(content_type, object_id)
        decision = (
            ModerationDecision.objects.for_object(obj)
            .select_related("decided_by")
            .first()
        )
        attach_media_tags([obj])
        summary = {
            "content_type": filters.model_label(type(obj)),
            "object_id": str(obj.pk),
            "display": str(obj),
            "moderation_status": obj.moderation_status,  # type: ignore[attr-defined]
            "decision": decision,
            "results": sorted(
                services.current_analyses(obj),
                key=lambda a: (a.field_name, a.analysis_type),
            ),
            "tags": obj._cloudinary_analysis_tags,  # type: ignore[attr-defined]
        }
        return Response(ObjectSummarySerializer(summary).data)

    @extend_schema(
        request=ReanalyzeObjectSerializer,
        responses={200: ScheduledSerializer, 202: ScheduledSerializer},
        summary="Re-run the analyses of one object",
    )
    def reanalyze(
        self, request: Request, content_type: str, object_id: str
    ) -> Response:
        """Queue analyses of the object (chosen types and fields, or all)."""
        obj = self.get_media_object(content_type, object_id)
        body = ReanalyzeObjectSerializer(
            data=request.data, context={"model": type(obj)}
        )
        body.is_valid(raise_exception=True)
        data = body.validated_data
        scheduled = services.schedule(
            obj,
            fields=data.get("fields"),
            types=data.get("types"),
            force=data["force"],
        )
        logger.info(
            "API: %s re-analysed %s %s (%d queued)",
            request.user.pk,
            content_type,
            obj.pk,
            len(scheduled),
        )
        return _scheduled_response(scheduled)


class ModerationViewSet(
    CloudinaryAnalysisViewMixin, mixins.ListModelMixin, viewsets.GenericViewSet
):
    """The moderation queue across every mixin model; approve and reject."""

    serializer_class = ModerationItemSerializer
    filter_backends = [filters.ModerationFilterBackend]
    action_permissions = {
        "approve": (REVIEW_PERMISSION,),
        "reject": (REVIEW_PERMISSION,),
    }

    def get_queryset(self) -> QuerySet[ModerationDecision]:
        """Current verdicts (newest decision per object) that await review."""
        types = [content_type_for(m) for m in media_models()]
        queryset = (
            ModerationDecision.objects.current()
            .filter(status__in=filters.QUEUE_STATUSES, content_type__in=types)
            .select_related("content_type", "decided_by")
            .prefetch_related("content_object")
            # Oldest first: the queue is worked in the order things arrived.
            .order_by("decided_at", "pk")
        )
        return self.filter_rows(queryset)

    def get_serializer_class(self) -> type[BaseSerializer]:
        """Request body of approve/reject, else the queue item."""
        if self.action in ("approve", "reject"):
            return ReviewSerializer
        return ModerationItemSerializer

    @extend_schema(summary="Objects waiting for a moderator")
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """List objects whose verdict is pending or review, oldest first."""
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        items = attach_media_tags(page if page is not None else queryset)
        data = ModerationItemSerializer(items, many=True).data
        if page is not None:
            return self.get_paginated_response(data)
        return Response(data)

    @extend_schema(
        request=ReviewSerializer,
        responses={200: ModerationItemSerializer},
        summary="Approve an object",
    )
    def approve(self, request: Request, content_type: str, object_id: str) -> Response:
        """Approve by hand; the verdict stands until the content changes."""
        return self._review(services.approve, content_type, object_id)

    @extend_schema(
        request=ReviewSerializer,
        responses={200: ModerationItemSerializer},
        summary="Reject an object",
    )
    def reject(self, request: Request, content_type: str, object_id: str) -> Response:
        """Reject by hand; the verdict stands until the content changes."""
        return self._review(services.reject, content_type, object_id)

    def _review(self, decide: Any, content_type: str, object_id: str) -> Response:
        obj = self.get_media_object(content_type, object_id)
        body = ReviewSerializer(data=self.request.data)
        body.is_valid(raise_exception=True)
        decision = decide(obj, user=self.request.user, note=body.validated_data["note"])
        decision.content_object = obj
        logger.info(
            "API: %s %s %s %s",
            self.request.user.pk,
            decision.status,
            content_type,
            obj.pk,
        )
        attach_media_tags([decision])
        return Response(ModerationItemSerializer(decision).data)
