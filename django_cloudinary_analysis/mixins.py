"""The abstract model a site puts on its own models that hold images."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.contrib.contenttypes.models import ContentType
from django.db import connections, models
from django.db.models.functions import Cast, Replace
from django.utils.translation import gettext_lazy as _

from django_cloudinary_analysis.models import (
    Analysis,
    MediaTag,
    ModerationDecision,
    ModerationStatus,
)

if TYPE_CHECKING:
    from django.db.models import Model

    from django_cloudinary_analysis.models import AnalysisQuerySet, MediaTagQuerySet


@dataclass(frozen=True)
class AnalysisSpec:
    """One analysis type with its extras, as configured for a field."""

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
        f"cannot read analysis {item!r}: use a type name, (type, extras) "
        "or {'type': ..., **extras}"
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
    """Read a model's ``AnalysisMeta``: file field → analyses with extras.

    ``fields`` is a list of field names (each gets ``analyses``) or a dict of
    field name → analyses; ``analyses`` defaults to the DEFAULT_ANALYSES
    setting. An analysis is a type name, ``(type, extras)`` or
    ``{"type": ..., **extras}``.
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
    if isinstance(pk, models.UUIDField) and connections[using].vendor != "postgresql":
        # Other backends store UUIDs as 32 hex characters, without dashes.
        return Replace(models.F("object_id"), models.Value("-"), models.Value(""))
    target = pk.target_field if isinstance(pk, models.ForeignKey) else pk
    if isinstance(target, (models.AutoField, models.BigAutoField)):
        return Cast("object_id", models.BigIntegerField())
    return Cast("object_id", target.__class__())


class AnalyzedMediaQuerySet(models.QuerySet):
    """Moderation and tag filters for models using the mixin."""

    def approved(self) -> AnalyzedMediaQuerySet:
        """Objects a moderator or the policy approved."""
        return self.filter(moderation_status=ModerationStatus.APPROVED)

    def rejected(self) -> AnalyzedMediaQuerySet:
        """Objects that were rejected."""
        return self.filter(moderation_status=ModerationStatus.REJECTED)

    def pending_review(self) -> AnalyzedMediaQuerySet:
        """Objects with no final verdict yet: pending or flagged for review."""
        return self.filter(
            moderation_status__in=[ModerationStatus.PENDING, ModerationStatus.REVIEW]
        )

    def needs_review(self) -> AnalyzedMediaQuerySet:
        """Objects the policy sent to a human."""
        return self.filter(moderation_status=ModerationStatus.REVIEW)

    def tagged(
        self, name: str, min_confidence: float | None = None
    ) -> AnalyzedMediaQuerySet:
        """Objects with a tag ``name`` (normalised), optionally above a confidence."""
        ids = (
            MediaTag.objects.for_model(self.model)
            .named(name, min_confidence)
            .annotate(_oid=object_id_expression(self.model, self.db))
            .values("_oid")
        )
        return self.filter(pk__in=ids)


class AnalyzedMedia(models.Model):
    """Abstract base: analyses every configured file on upload.

    Configure with an inner ``AnalysisMeta`` class (``fields``, ``analyses``;
    write-back: ``alt_text_field``, ``tags_field``, see ``writeback.options``;
    ``owner_field`` naming the uploader for statements and appeals).
    """

    moderation_status = models.CharField(
        _("moderation status"),
        max_length=20,
        choices=ModerationStatus.choices,
        default=ModerationStatus.PENDING,
        db_index=True,
        editable=False,
    )

    objects = AnalyzedMediaQuerySet.as_manager()

    class Meta:
        abstract = True

    @classmethod
    def from_db(cls, db: Any, field_names: Any, values: Any) -> Any:  # type: ignore[override]
        """Remember the stored file names, to tell a new upload from a re-save."""
        instance = super().from_db(db, field_names, values)
        instance._analysis_snapshot = file_snapshot(instance)
        return instance

    def _do_update(
        self, base_qs: Any, using: Any, pk_val: Any, values: Any, *args: Any, **kw: Any
    ) -> Any:
        """Leave ``moderation_status`` out of an UPDATE unless the app writes it.

        Only services (decisions, with ``QuerySet.update``) and a save carrying
        a new file (the receiver resets the verdict to pending) set the
        verdict; any other save leaves the stored one alone, so an instance
        loaded before a worker or a reviewer decided cannot write it back.
        """
        if not self.__dict__.get("_analysis_write_status"):
            values = [v for v in values if v[0].attname != "moderation_status"]
        return super()._do_update(base_qs, using, pk_val, values, *args, **kw)  # type: ignore[misc]

    def analyze(
        self,
        *,
        force: bool = False,
        fields: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
    ) -> list[Analysis]:
        """Schedule analyses of this object's files (after the transaction)."""
        from django_cloudinary_analysis import services

        return services.schedule(self, fields=fields, types=types, force=force)

    @property
    def analyses(self) -> AnalysisQuerySet:
        """Every analysis of this object, newest first."""
        return Analysis.objects.for_object(self)

    @property
    def media_tags(self) -> MediaTagQuerySet:
        """The current tags of this object, most confident first."""
        return MediaTag.objects.for_object(self)

    @property
    def moderation_history(self) -> models.QuerySet[ModerationDecision]:
        """Every verdict on this object, newest first."""
        return ModerationDecision.objects.for_object(self)

    def latest_results(self) -> dict[tuple[str, str], Analysis]:
        """The newest succeeded analysis per (field, type)."""
        latest: dict[tuple[str, str], Analysis] = {}
        for analysis in self.analyses.succeeded():
            latest.setdefault((analysis.field_name, analysis.analysis_type), analysis)
        return latest


def file_snapshot(instance: Model) -> dict[str, str]:
    """Stored names of the configured file fields that are loaded."""
    loaded = instance.__dict__
    return {
        name: stored_name(getattr(instance, name))
        for name in analysis_config(type(instance))
        if name in loaded
    }


def changed_fields(
    instance: Model, update_fields: Iterable[str] | None = None
) -> list[str]:
    """Configured file fields whose stored name is new since the object loaded."""
    config = analysis_config(type(instance))
    names = list(config)
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


def media_models(*, proxies: bool = False) -> list[type[AnalyzedMedia]]:
    """Every installed concrete model that uses the ``AnalyzedMedia`` mixin.

    Proxy models share their concrete model's rows and content type, so they
    are left out unless ``proxies`` (signal receivers need them: a proxy
    instance's save is sent with the proxy class).
    """
    from django.apps import apps

    return [
        model
        for model in apps.get_models()
        if issubclass(model, AnalyzedMedia) and (proxies or not model._meta.proxy)
    ]
