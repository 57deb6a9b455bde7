"""Per-model analysis configuration and object identity.

Which fields of a model are analysed with which types and params
(``AnalysisMeta``), stored file names and what changed in a save, the
uploader, and the one expression between a primary key and the text
``object_id`` the app's rows store. Imported by the mixin, services, checks,
the admin and the API; it imports no services.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.contrib.contenttypes.models import ContentType
from django.core.signals import setting_changed
from django.db import connections, models
from django.db.models.functions import Cast, Concat, Replace, Substr

if TYPE_CHECKING:
    from django.db.models import Model


@dataclass(frozen=True)
class AnalysisSpec:
    """One analysis type with its params, as configured for a field."""

    type: str
    params: Mapping[str, Any] = field(default_factory=dict)


def _spec(item: Any) -> AnalysisSpec:
    if isinstance(item, AnalysisSpec):
        return item
    if isinstance(item, str):
        return AnalysisSpec(item, {})
    if isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str):
        return AnalysisSpec(item[0], dict(item[1] or {}))
    if isinstance(item, Mapping) and isinstance(item.get("type"), str):
        params = {k: v for k, v in item.items() if k != "type"}
        return AnalysisSpec(item["type"], params)
    raise TypeError(
        f"cannot read analysis {item!r}: use a type name, (type, params) "
        "or {'type': ..., **params}"
    )


def file_field_names(model: type[Model]) -> list[str]:
    """Names of the model's FileField/ImageField fields (or CloudinaryFields)."""
    from django_cloudinary_analysis.sources import is_cloudinary_field

    return [
        f.name
        for f in model._meta.concrete_fields
        if isinstance(f, models.FileField) or is_cloudinary_field(f)
    ]


def analysis_config(model: type[Model]) -> dict[str, list[AnalysisSpec]]:
    """Read a model's ``AnalysisMeta``: file field → analyses with params.

    ``fields`` is a list of field names (each gets ``analyses``) or a dict of
    field name → analyses; ``analyses`` defaults to the DEFAULT_ANALYSES
    setting. An analysis is a type name, ``(type, params)`` or
    ``{"type": ..., **params}``.
    """
    from django_cloudinary_analysis.conf import app_settings

    meta = getattr(model, "AnalysisMeta", None)
    fields = getattr(meta, "fields", None)
    default = getattr(meta, "analyses", None)
    if default is None:
        default = app_settings.DEFAULT_ANALYSES
    if fields is None:
        fields = file_field_names(model)
    if isinstance(fields, Mapping):
        items: Iterable[tuple[str, Any]] = fields.items()
    else:
        items = ((name, default) for name in fields)
    return {name: [_spec(a) for a in analyses] for name, analyses in items}


@dataclass(frozen=True)
class PlannedAnalysis:
    """One configured analysis of a field as a save queues it: the type, the
    params sent (site defaults filled in) and their digest."""

    type: str
    #: Shared by every save of the model: copy before changing it.
    params: Mapping[str, Any]
    params_hash: str


#: Per model: file field → its planned analyses (see :func:`analysis_plan`).
_PLANS: dict[type[Model], dict[str, tuple[PlannedAnalysis, ...]]] = {}


def analysis_plan(model: type[Model]) -> dict[str, tuple[PlannedAnalysis, ...]]:
    """:func:`analysis_config` with each analysis's effective params and
    their digest, worked out once per model (a save reads it three times).

    Forgotten when ``CLOUDINARY_ANALYSIS`` changes (Django's
    ``setting_changed``), whose ``DEFAULT_ANALYSES`` and
    ``REJECTION_QUESTIONS`` it depends on. Read-only: do not change it.
    """
    plan = _PLANS.get(model)
    if plan is None:
        from django_cloudinary_analysis.models import params_hash

        plan = {}
        for name, specs in analysis_config(model).items():
            planned = []
            for spec in specs:
                params = effective_params(spec)
                planned.append(PlannedAnalysis(spec.type, params, params_hash(params)))
            plan[name] = tuple(planned)
        _PLANS[model] = plan
    return plan


def _forget_plans(*, setting: str, **kwargs: Any) -> None:
    from django_cloudinary_analysis.conf import SETTING_NAME

    if setting == SETTING_NAME:
        _PLANS.clear()


setting_changed.connect(_forget_plans, dispatch_uid="cloudinary_analysis.plans")


def analysis_owner(obj: Model) -> Any:
    """The uploader: ``obj.get_analysis_owner()``, else ``AnalysisMeta.owner_field``."""
    getter = getattr(obj, "get_analysis_owner", None)
    if callable(getter):
        return getter()
    name = getattr(getattr(type(obj), "AnalysisMeta", None), "owner_field", None)
    return getattr(obj, name, None) if name else None


def stored_name(value: Any) -> str:
    """The name a file field stores: FieldFile.name or a CloudinaryResource."""
    if value is None:
        return ""
    name = getattr(value, "name", None)
    if name is not None:
        return name or ""
    # pycloudinary's CloudinaryResource
    public_id = getattr(value, "public_id", None)
    if public_id:
        version = getattr(value, "version", None)
        return f"{public_id}@{version}" if version else str(public_id)
    return str(value) if value else ""


def object_id_expression(model: type[Model], using: str = "default") -> Any:
    """An expression turning the text ``object_id`` into ``model``'s pk type."""
    pk = model._meta.pk
    assert pk is not None
    if isinstance(pk, (models.CharField, models.TextField)):
        return models.F("object_id")
    if (
        isinstance(pk, models.UUIDField)
        and not connections[using].features.has_native_uuid_field
    ):
        # Other backends store UUIDs as 32 hex characters, without dashes.
        return Replace(models.F("object_id"), models.Value("-"), models.Value(""))
    target = pk.target_field if isinstance(pk, models.ForeignKey) else pk
    if isinstance(target, (models.AutoField, models.BigAutoField)):
        return Cast("object_id", models.BigIntegerField())
    return Cast("object_id", target.__class__())


def file_snapshot(instance: Model) -> dict[str, str]:
    """Stored names of the configured file fields that are loaded."""
    loaded = instance.__dict__
    return {
        name: stored_name(getattr(instance, name))
        for name in analysis_plan(type(instance))
        if name in loaded
    }


def changed_fields(
    instance: Model, update_fields: Iterable[str] | None = None
) -> list[str]:
    """Configured file fields whose stored name is new since the object loaded."""
    names = list(analysis_plan(type(instance)))
    if update_fields is not None:
        names = [n for n in names if n in set(update_fields)]
    snapshot = getattr(instance, "_analysis_snapshot", None)
    adding = instance._state.adding or snapshot is None
    changed = []
    for name in names:
        if name not in instance.__dict__:
            continue  # deferred: not loaded, so not written either
        current = stored_name(getattr(instance, name))
        if adding:
            if current:
                changed.append(name)
        elif (
            snapshot is not None and current and current != snapshot.get(name, current)
        ):
            changed.append(name)
    return changed


def content_type_for(obj: Model | type[Model]) -> ContentType:
    """The content type rows of ``obj`` are stored under (its concrete model)."""
    return ContentType.objects.get_for_model(obj)


def pk_as_text(model: type[Model], using: str = "default") -> Any:
    """An expression rendering ``model``'s pk as the app stores it in object_id.

    The app stores ``str(obj.pk)``; casting the pk (rather than the text
    column) keeps the comparison valid on PostgreSQL for every content type.
    """
    pk = model._meta.pk
    assert pk is not None
    target = pk.target_field if isinstance(pk, models.ForeignKey) else pk
    if isinstance(target, (models.CharField, models.TextField)):
        return models.F("pk")
    if (
        isinstance(target, models.UUIDField)
        and not connections[using].features.has_native_uuid_field
    ):
        # Stored as 32 hex digits: put back the dashes str(UUID) has.
        parts: list[Any] = []
        for start, length in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12)):
            if parts:
                parts.append(models.Value("-"))
            parts.append(Substr("pk", start, length))
        return Concat(*parts, output_field=models.CharField())
    return Cast("pk", models.CharField())


def effective_params(spec: AnalysisSpec) -> dict[str, Any]:
    """The params sent for ``spec``, with site defaults filled in."""
    from django_cloudinary_analysis.conf import app_settings

    params = dict(spec.params)
    if spec.type == "ai_vision_moderation" and not params.get("rejection_questions"):
        params["rejection_questions"] = list(app_settings.REJECTION_QUESTIONS)
    return params
