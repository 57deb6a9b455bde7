"""The abstract model a site puts on its own models that hold images."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.db import models
from django.utils.translation import gettext_lazy as _

from django_cloudinary_analysis.models import (
    Analysis,
    MediaTag,
    ModerationDecision,
    ModerationStatus,
)
from django_cloudinary_analysis.options import (  # noqa: F401  (re-exported)
    AnalysisSpec,
    analysis_config,
    analysis_owner,
    changed_fields,
    content_type_for,
    file_field_names,
    file_snapshot,
    object_id_expression,
    stored_name,
)

if TYPE_CHECKING:
    from django.apps import AppConfig

    from django_cloudinary_analysis.models import AnalysisQuerySet, MediaTagQuerySet


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


def media_models(
    *, proxies: bool = False, app_configs: Iterable[AppConfig] | None = None
) -> list[type[AnalyzedMedia]]:
    """Every installed concrete model that uses the ``AnalyzedMedia`` mixin.

    Proxy models share their concrete model's rows and content type, so they
    are left out unless ``proxies`` (signal receivers need them: a proxy
    instance's save is sent with the proxy class). ``app_configs`` limits the
    search to those apps (system checks are run per app).
    """
    from django.apps import apps

    models_ = (
        [m for config in app_configs for m in config.get_models()]
        if app_configs is not None
        else apps.get_models()
    )
    return [
        model
        for model in models_
        if issubclass(model, AnalyzedMedia) and (proxies or not model._meta.proxy)
    ]
