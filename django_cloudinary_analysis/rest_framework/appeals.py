"""The uploader's side of moderation: the statement of reasons and the appeal.

``GET  moderation/<app_label.model>/<pk>/appeal/`` shows the current verdict,
its statement of reasons and the appeals so far; ``POST`` (body ``{"note":
"..."}``) appeals the current rejection once. Only the object's uploader
(``AnalysisMeta.owner_field`` or ``get_analysis_owner()``) may use it; anyone
else gets 404, so the endpoint does not reveal which objects exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from django_cloudinary_analysis.accountability import appeals, statements
from django_cloudinary_analysis.accountability.models import (
    Appeal,
    StatementOfReasons,
)
from django_cloudinary_analysis.models import ModerationDecision
from django_cloudinary_analysis.rest_framework import filters
from django_cloudinary_analysis.rest_framework.schema import extend_schema

if TYPE_CHECKING:
    from django.db.models import Model
    from rest_framework.request import Request


class AppealRequestSerializer(serializers.Serializer):
    """Why the uploader thinks the decision is wrong."""

    note = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=appeals.NOTE_MAX_LENGTH,
    )


class AppealSerializer(serializers.ModelSerializer):
    """One appeal and how it ended."""

    # Plain text in the schema: another "status" enum would collide by name.
    status = serializers.CharField(
        read_only=True, help_text="open, overturned, upheld or superseded"
    )

    class Meta:
        model = Appeal
        fields = ["id", "decision", "status", "note", "created_at", "closed_at"]
        read_only_fields = fields


class UploaderStatusSerializer(serializers.Serializer):
    """The verdict, its statement of reasons, and the appeals."""

    status = serializers.CharField()
    decided_at = serializers.DateTimeField(allow_null=True)
    automated = serializers.BooleanField(allow_null=True)
    grounds = serializers.ListField(child=serializers.CharField())
    can_appeal = serializers.BooleanField()
    appeals = AppealSerializer(many=True)


class AppealView(APIView):
    """The uploader's statement of reasons and appeal for one object."""

    permission_classes = [permissions.IsAuthenticated]

    def get_object(self, content_type: str, object_id: str) -> Model:
        """The object, if the requesting user is its uploader; else 404."""
        model = filters.resolve_media_model(content_type)
        if model is None:
            raise exceptions.NotFound(_("No such model using AnalyzedMedia."))
        pk = filters.parse_object_pk(model, object_id)
        obj = model._default_manager.filter(pk=pk).first()
        if obj is None or not appeals.is_owner(obj, self.request.user):
            raise exceptions.NotFound()
        return obj  # type: ignore[no-any-return]

    def summary(self, obj: Model) -> dict[str, Any]:
        """What the uploader may know about the verdict on ``obj``."""
        decision = ModerationDecision.objects.for_object(obj).first()
        statement = (
            StatementOfReasons.objects.filter(decision=decision).first()
            if decision is not None
            else None
        )
        context = statements.statement_context(statement) if statement else {}
        return {
            "status": obj.moderation_status,  # type: ignore[attr-defined]
            "decided_at": decision.decided_at if decision else None,
            "automated": context.get("automated"),
            "grounds": context.get("grounds", []),
            "can_appeal": decision is not None and statements.is_appealable(decision),
            "appeals": Appeal.objects.filter(
                content_type=decision.content_type_id if decision else None,
                object_id=str(obj.pk),
            ).order_by("-created_at", "-pk"),
        }

    @extend_schema(
        responses={200: UploaderStatusSerializer},
        summary="The uploader's statement of reasons",
    )
    def get(self, request: Request, content_type: str, object_id: str) -> Response:
        """Show the uploader the verdict, its reasons and the appeals so far."""
        obj = self.get_object(content_type, object_id)
        return Response(UploaderStatusSerializer(self.summary(obj)).data)

    @extend_schema(
        request=AppealRequestSerializer,
        responses={201: AppealSerializer},
        summary="Appeal a rejection",
    )
    def post(self, request: Request, content_type: str, object_id: str) -> Response:
        """Appeal the current rejection; the object goes back to review."""
        obj = self.get_object(content_type, object_id)
        body = AppealRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            appeal = appeals.open_appeal(obj, request.user, body.validated_data["note"])  # type: ignore[arg-type]
        except appeals.AppealError as exc:
            code = (
                status.HTTP_403_FORBIDDEN
                if exc.code == "not_owner"
                else status.HTTP_409_CONFLICT
            )
            return Response({"detail": str(exc.message), "code": exc.code}, status=code)
        return Response(AppealSerializer(appeal).data, status=status.HTTP_201_CREATED)
