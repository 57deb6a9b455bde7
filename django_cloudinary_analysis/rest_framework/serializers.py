"""Serializers of the API, and the mixin sites put on their own serializers.

A site embeds tags and the verdict in its own model serializer::

    class PhotoSerializer(AnalyzedMediaSerializerMixin, serializers.ModelSerializer):
        class Meta:
            model = Photo
            fields = ["id", "title", "moderation_status", "media_tags"]

Lists of it (``many=True``) load the tags of all their objects in one query.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from django_cloudinary_analysis import payloads
from django_cloudinary_analysis.mixins import analysis_config
from django_cloudinary_analysis.models import (
    Analysis,
    MediaTag,
    ModerationDecision,
    ModerationStatus,
)
from django_cloudinary_analysis.rest_framework.fields import (
    ContentTypeField,
    attach_media_tags,
    media_tags_of,
    prefetch_media_tags,
)
from django_cloudinary_analysis.rest_framework.filters import get_object_filter

__all__ = [
    "AnalysisDetailSerializer",
    "AnalysisSerializer",
    "AnalyzedMediaListSerializer",
    "AnalyzedMediaSerializerMixin",
    "LatestResultSerializer",
    "MediaTagSerializer",
    "MediaTagsField",
    "ModerationDecisionSerializer",
    "ModerationItemSerializer",
    "ObjectSummarySerializer",
    "ReanalyzeAnalysisSerializer",
    "ReanalyzeObjectSerializer",
    "ReviewSerializer",
    "ScheduledAnalysisSerializer",
    "ScheduledSerializer",
    "attach_media_tags",
    "prefetch_media_tags",
]


class MediaTagSerializer(serializers.ModelSerializer):
    """One normalised tag."""

    field = serializers.CharField(source="field_name", read_only=True)

    class Meta:
        model = MediaTag
        fields = [
            "name",
            "label",
            "confidence",
            "analysis_type",
            "field",
            "box",
            "analysis",
        ]
        read_only_fields = fields


class MediaTagsField(serializers.ListField):
    """An object's tags (read-only), from the attached cache when loaded."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("child", MediaTagSerializer())
        kwargs["read_only"] = True
        kwargs.setdefault("source", "*")
        super().__init__(**kwargs)

    def get_attribute(self, instance: Any) -> Any:
        """Read the object's tags (one query unless attached beforehand)."""
        return media_tags_of(instance)


class AnalyzedMediaListSerializer(serializers.ListSerializer):
    """A list that loads the tags of all its objects in one query."""

    def to_representation(self, data: Any) -> list[Any]:
        """Attach tags to the whole page, then render each object."""
        iterable = data.all() if hasattr(data, "all") else data
        return super().to_representation(attach_media_tags(iterable))


class AnalyzedMediaSerializerMixin(serializers.Serializer):
    """Add ``moderation_status`` and ``media_tags`` to a site's serializer."""

    moderation_status = serializers.ChoiceField(
        choices=ModerationStatus.choices, read_only=True
    )
    media_tags = MediaTagsField()

    @classmethod
    def many_init(cls, *args: Any, **kwargs: Any) -> serializers.BaseSerializer:
        """Batch tag loading for lists unless the site names its own list class."""
        list_serializer = super().many_init(*args, **kwargs)
        if type(list_serializer) is serializers.ListSerializer:
            # Same state, one overridden method: safe to swap the class.
            list_serializer.__class__ = AnalyzedMediaListSerializer
        return list_serializer


class AnalysisSerializer(serializers.ModelSerializer):
    """One analysis with its tags (list view)."""

    content_type = ContentTypeField()
    field = serializers.CharField(source="field_name", read_only=True)
    reason = serializers.CharField(
        source="error_message",
        read_only=True,
        help_text=_("Why the analysis failed, was skipped or is retrying."),
    )
    tags = MediaTagSerializer(many=True, read_only=True)

    class Meta:
        model = Analysis
        fields = [
            "id",
            "content_type",
            "object_id",
            "field",
            "file_name",
            "analysis_type",
            "params",
            "status",
            "reason",
            "error_code",
            "attempts",
            "backend",
            "reused_from",
            "result",
            "tags",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def to_representation(self, instance: Analysis) -> dict[str, Any]:
        """Show a reused result as its own: no donor's ids, file or request."""
        data: dict[str, Any] = super().to_representation(instance)
        if instance.reused_from_id is None:
            return data
        if "raw" in data:
            data["raw"] = payloads.reused_raw(instance.raw, instance.file_name)
        if not self._shows_donors():
            data["reused_from"] = None
            if "request_id" in data:
                data["request_id"] = ""
        return data

    def _shows_donors(self) -> bool:
        """Donor ids are for superusers, or for all when no object rule applies."""
        request = self.context.get("request")
        if getattr(getattr(request, "user", None), "is_superuser", False):
            return True
        view = self.context.get("view")
        if view is not None and hasattr(view, "filters_objects"):
            return not view.filters_objects()
        return get_object_filter() is None


class AnalysisDetailSerializer(AnalysisSerializer):
    """One analysis with the API's raw response and request ids."""

    class Meta(AnalysisSerializer.Meta):
        fields = [
            *AnalysisSerializer.Meta.fields,
            "request_id",
            "remote_task_id",
            "raw",
        ]
        read_only_fields = fields


class ScheduledAnalysisSerializer(serializers.ModelSerializer):
    """An analysis just queued."""

    content_type = ContentTypeField()
    field = serializers.CharField(source="field_name", read_only=True)

    class Meta:
        model = Analysis
        fields = [
            "id",
            "content_type",
            "object_id",
            "field",
            "analysis_type",
            "params",
            "status",
            "created_at",
        ]
        read_only_fields = fields


class ScheduledSerializer(serializers.Serializer):
    """What a re-analyse request queued."""

    detail = serializers.CharField(read_only=True)
    scheduled = ScheduledAnalysisSerializer(many=True, read_only=True)


class LatestResultSerializer(serializers.ModelSerializer):
    """The newest analysis of one (field, type) of an object."""

    field = serializers.CharField(source="field_name", read_only=True)
    reason = serializers.CharField(source="error_message", read_only=True)

    class Meta:
        model = Analysis
        fields = [
            "id",
            "field",
            "analysis_type",
            "status",
            "result",
            "reason",
            "error_code",
            "finished_at",
        ]
        read_only_fields = fields


class ModerationDecisionSerializer(serializers.ModelSerializer):
    """One verdict: who or what decided, why, when."""

    moderation_status = serializers.ChoiceField(
        source="status", choices=ModerationStatus.choices, read_only=True
    )
    previous_status = serializers.CharField(
        read_only=True,
        help_text=_("The verdict before this decision (empty for the first)."),
    )
    decided_by_username = serializers.SerializerMethodField()

    class Meta:
        model = ModerationDecision
        fields = [
            "id",
            "moderation_status",
            "previous_status",
            "decided_by_kind",
            "decided_by",
            "decided_by_username",
            "reasons",
            "note",
            "decided_at",
        ]
        read_only_fields = fields

    def get_decided_by_username(self, decision: ModerationDecision) -> str | None:
        """The deciding user's username, for human decisions."""
        user = decision.decided_by
        return user.get_username() if user is not None else None


class ObjectSummarySerializer(serializers.Serializer):
    """An object's latest results per field and type, tags and verdict."""

    content_type = serializers.CharField(read_only=True)
    object_id = serializers.CharField(read_only=True)
    display = serializers.CharField(read_only=True, help_text=_("str(object)"))
    moderation_status = serializers.ChoiceField(
        choices=ModerationStatus.choices, read_only=True
    )
    decision = ModerationDecisionSerializer(read_only=True, allow_null=True)
    results = LatestResultSerializer(many=True, read_only=True)
    tags = MediaTagSerializer(many=True, read_only=True)


class ModerationItemSerializer(serializers.ModelSerializer):
    """An object's current verdict, for the queue and review answers."""

    content_type = ContentTypeField()
    display = serializers.SerializerMethodField()
    moderation_status = serializers.ChoiceField(
        source="status", choices=ModerationStatus.choices, read_only=True
    )
    decision = ModerationDecisionSerializer(source="*", read_only=True)
    tags = MediaTagsField()

    class Meta:
        model = ModerationDecision
        fields = [
            "content_type",
            "object_id",
            "display",
            "moderation_status",
            "decision",
            "tags",
        ]
        read_only_fields = fields

    def get_display(self, decision: ModerationDecision) -> str | None:
        """str() of the object (None when it no longer exists)."""
        obj = decision.content_object
        return str(obj) if obj is not None else None


class ReanalyzeAnalysisSerializer(serializers.Serializer):
    """Body of ``POST analyses/{id}/reanalyze/``."""

    force = serializers.BooleanField(
        default=False,
        help_text=_("Re-run even if it succeeded, without reusing earlier results."),
    )


class ReanalyzeObjectSerializer(serializers.Serializer):
    """Body of ``POST objects/{content_type}/{object_id}/reanalyze/``."""

    types = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        allow_empty=False,
        help_text=_("Analysis types to run (default: every configured type)."),
    )
    # DRF's metaclass moves declared fields aside, so this does not shadow
    # Serializer.fields.
    fields = serializers.ListField(  # type: ignore[assignment]
        child=serializers.CharField(),
        required=False,
        allow_empty=False,
        help_text=_("File fields to analyse (default: every configured field)."),
    )
    force = serializers.BooleanField(
        default=False,
        help_text=_("Re-run even what succeeded, without reusing earlier results."),
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Accept only the fields and types the model configures."""
        config = analysis_config(self.context["model"])
        errors: dict[str, list[str]] = {}
        unknown_fields = sorted(set(attrs.get("fields") or ()) - set(config))
        if unknown_fields:
            errors["fields"] = [
                _("Not analysed on this model: %s.") % ", ".join(unknown_fields)
            ]
        wanted = attrs.get("fields") or list(config)
        configured = {spec.type for name in wanted for spec in config.get(name, ())}
        unknown_types = sorted(set(attrs.get("types") or ()) - configured)
        if unknown_types:
            errors["types"] = [
                _("Not configured for these fields: %s.") % ", ".join(unknown_types)
            ]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class ReviewSerializer(serializers.Serializer):
    """Body of ``POST moderation/{content_type}/{object_id}/approve|reject/``."""

    note = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=10000,
        help_text=_("Why, for the moderation history."),
    )
