"""What an API user sees: addressable models, visible objects, query filters.

Only models using the ``AnalyzedMedia`` mixin are addressable. The
``API_OBJECT_FILTER`` setting names a callable ``(request, queryset) ->
queryset`` that receives ``Model._default_manager.all()`` for one of those
models and returns the objects the requesting user may see; analyses, tags
and verdicts of other objects are hidden everywhere in the API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, filters

from django_cloudinary_analysis.analysis_types import normalise_name
from django_cloudinary_analysis.conf import import_setting
from django_cloudinary_analysis.mixins import AnalyzedMedia, content_type_for
from django_cloudinary_analysis.models import (
    ANALYSIS_TYPE_CHOICES,
    AnalysisStatus,
    MediaTag,
    ModerationStatus,
)

if TYPE_CHECKING:
    from django.db.models import Model, QuerySet
    from rest_framework.request import Request

ObjectFilter = Callable[["Request", "QuerySet[Any]"], "QuerySet[Any]"]

ANALYSIS_TYPES = frozenset(name for name, _label in ANALYSIS_TYPE_CHOICES)
QUEUE_STATUSES = (ModerationStatus.PENDING, ModerationStatus.REVIEW)


# -- models -------------------------------------------------------------------


def model_label(model: type[Model]) -> str:
    """The ``app_label.model`` name the API uses for a model."""
    return f"{model._meta.app_label}.{model._meta.model_name}"


def resolve_media_model(label: str) -> type[Model] | None:
    """The mixin model named ``app_label.model``, or None."""
    app_label, dot, model_name = label.partition(".")
    if not dot or not app_label or not model_name:
        return None
    try:
        model = apps.get_model(app_label, model_name)
    except LookupError:
        return None
    if not issubclass(model, AnalyzedMedia) or model._meta.abstract:
        return None
    return model


# -- visibility -----------------------------------------------------------------


def get_object_filter() -> ObjectFilter | None:
    """The ``API_OBJECT_FILTER`` callable, or None when unset."""
    return import_setting("API_OBJECT_FILTER")  # type: ignore[no-any-return]


# -- query parameters ---------------------------------------------------------


def _param(name: str, description: Any, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "required": False,
        "in": "query",
        "description": str(description),
        "schema": schema,
    }


def _choices(value: str, allowed: frozenset[str] | set[str], name: str) -> list[str]:
    values = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        raise exceptions.ValidationError(
            {name: [_("Unknown value(s): %s.") % ", ".join(unknown or [value])]}
        )
    return values


def _content_type_param(value: str) -> type[Model]:
    model = resolve_media_model(value)
    if model is None:
        raise exceptions.ValidationError(
            {
                "content_type": [
                    _("%s is not a model using AnalyzedMedia (app_label.model).")
                    % value
                ]
            }
        )
    return model


def _float_param(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if number != number or number in (float("inf"), float("-inf")):
        raise exceptions.ValidationError({name: [_("A number is required.")]})
    return number


class AnalysisFilterBackend(filters.BaseFilterBackend):
    """Query parameters of the analysis list (validated; 400 on bad values)."""

    def filter_queryset(
        self, request: Request, queryset: QuerySet[Any], view: Any
    ) -> QuerySet[Any]:
        """Apply the query parameters to a list; details ignore them."""
        if getattr(view, "action", None) != "list":
            return queryset
        params = request.query_params
        if params.get("status"):
            statuses = _choices(params["status"], set(AnalysisStatus.values), "status")
            queryset = queryset.filter(status__in=statuses)
        kind = params.get("analysis_type") or params.get("type")
        if kind:
            queryset = queryset.filter(
                analysis_type__in=_choices(kind, ANALYSIS_TYPES, "analysis_type")
            )
        if params.get("content_type"):
            model = _content_type_param(params["content_type"])
            queryset = queryset.filter(content_type=content_type_for(model))
        if params.get("object_id"):
            queryset = queryset.filter(object_id=params["object_id"])
        if params.get("field"):
            queryset = queryset.filter(field_name=params["field"])
        tag = params.get("tag")
        minimum = params.get("min_confidence")
        if minimum and not tag:
            raise exceptions.ValidationError(
                {"min_confidence": [_("min_confidence needs a tag parameter.")]}
            )
        if tag:
            tags = MediaTag.objects.filter(
                analysis=OuterRef("pk"), name=normalise_name(tag)
            )
            if minimum:
                tags = tags.filter(
                    confidence__gte=_float_param(minimum, "min_confidence")
                )
            queryset = queryset.filter(Exists(tags))
        return queryset

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        """Describe the query parameters for OpenAPI."""
        text = {"type": "string"}
        return [
            _param(
                "status",
                _("Analysis status; several separated by commas."),
                {"type": "string", "example": "failed,skipped"},
            ),
            _param(
                "analysis_type",
                _("Analysis type (alias: type); several separated by commas."),
                {"type": "string", "example": "google_tagging"},
            ),
            _param("type", _("Alias of analysis_type."), text),
            _param(
                "content_type",
                _("Model of the analysed object, as app_label.model."),
                {"type": "string", "example": "gallery.photo"},
            ),
            _param("object_id", _("Primary key of the analysed object."), text),
            _param("field", _("Name of the analysed file field."), text),
            _param(
                "tag",
                _("Only analyses that produced this tag (name is normalised)."),
                text,
            ),
            _param(
                "min_confidence",
                _("With tag: the tag's minimum confidence (0 to 1)."),
                {"type": "number", "format": "float"},
            ),
        ]


class ModerationFilterBackend(filters.BaseFilterBackend):
    """Query parameters of the moderation queue."""

    def filter_queryset(
        self, request: Request, queryset: QuerySet[Any], view: Any
    ) -> QuerySet[Any]:
        """Filter the queue by model and verdict."""
        if getattr(view, "action", None) != "list":
            return queryset
        params = request.query_params
        if params.get("content_type"):
            model = _content_type_param(params["content_type"])
            queryset = queryset.filter(content_type=content_type_for(model))
        if params.get("moderation_status"):
            statuses = _choices(
                params["moderation_status"],
                {str(s) for s in QUEUE_STATUSES},
                "moderation_status",
            )
            queryset = queryset.filter(status__in=statuses)
        return queryset

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        """Describe the query parameters for OpenAPI."""
        return [
            _param(
                "content_type",
                _("Only objects of this model (app_label.model)."),
                {"type": "string", "example": "gallery.photo"},
            ),
            _param(
                "moderation_status",
                _("pending or review (default: both)."),
                {"type": "string", "enum": [str(s) for s in QUEUE_STATUSES]},
            ),
        ]


def parse_object_pk(model: type[Model], value: str) -> Any:
    """Convert a URL segment to ``model``'s pk, or raise NotFound."""
    pk = model._meta.pk
    assert pk is not None
    try:
        return pk.to_python(value)
    except (ValidationError, ValueError, TypeError) as exc:
        raise exceptions.NotFound() from exc
