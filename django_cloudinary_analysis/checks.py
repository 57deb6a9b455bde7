"""System checks for every misconfiguration a site can make.

Ledger of ids (never reuse one, even after a check is removed):
E001 credentials missing for the Cloudinary backend
E002 unknown analysis type in DEFAULT_ANALYSES or ASYNC_TYPES
E003 unknown analysis type in a model's AnalysisMeta
E004 extras an analysis type does not accept, or required extras missing
E005 an import path (BACKEND, SOURCE_RESOLVER, MODERATION_POLICY) is wrong
E006 a model's AnalysisMeta names a field that is not a file field
E007 a model's AnalysisMeta cannot be read
E008 ASYNC_TYPES set without an absolute WEBHOOK_URL
E009 ON_FAILURE is neither "review" nor "pending"
E010 CLOUDINARY_URL is malformed
E011 LABEL_RULES entries are malformed
W001 relative MEDIA_URL and no MEDIA_BASE_URL: the API cannot fetch local media
W002 an analysis type in ASYNC_TYPES cannot run async (it runs synchronously)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.utils.module_loading import import_string

TAG = "cloudinary_analysis"
ID = "cloudinary_analysis.{}"


def register() -> None:
    """Register the app's checks with Django."""
    checks.register(check_settings, TAG)
    checks.register(check_models, TAG, checks.Tags.models)


def _uses_cloudinary_backend(backend: str) -> bool:
    try:
        from django_cloudinary_analysis.backends.cloudinary import CloudinaryBackend

        cls = import_string(backend)
        return isinstance(cls, type) and issubclass(cls, CloudinaryBackend)
    except ImportError:
        return False


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Validate ``CLOUDINARY_ANALYSIS`` and the credentials."""
    from django_cloudinary_analysis import analyses
    from django_cloudinary_analysis.conf import app_settings
    from django_cloudinary_analysis.exceptions import ConfigurationError

    errors: list[checks.CheckMessage] = []
    for setting in ("BACKEND", "SOURCE_RESOLVER", "MODERATION_POLICY"):
        path = getattr(app_settings, setting)
        try:
            import_string(path)
        except ImportError as exc:
            errors.append(
                checks.Error(
                    f"CLOUDINARY_ANALYSIS['{setting}'] = {path!r} cannot be imported.",
                    hint=str(exc),
                    id=ID.format("E005"),
                )
            )

    if _uses_cloudinary_backend(app_settings.BACKEND):
        try:
            creds = app_settings.credentials
        except ConfigurationError as exc:
            errors.append(
                checks.Error(str(exc), hint=_CREDENTIALS_HINT, id=ID.format("E010"))
            )
        else:
            if not creds.complete:
                errors.append(
                    checks.Error(
                        "Cloudinary credentials are missing: "
                        + ", ".join(creds.missing())
                        + ".",
                        hint=_CREDENTIALS_HINT,
                        id=ID.format("E001"),
                    )
                )
        media_url = getattr(settings, "MEDIA_URL", "") or ""
        if not urlsplit(str(media_url)).scheme and not app_settings.MEDIA_BASE_URL:
            errors.append(
                checks.Warning(
                    f"MEDIA_URL {media_url!r} is relative, so the Analyze API cannot "
                    "fetch files kept in local media storage.",
                    hint="Set CLOUDINARY_ANALYSIS['MEDIA_BASE_URL'] to the site's "
                    "public origin, e.g. 'https://www.example.com', or store media "
                    "on Cloudinary or another storage with absolute URLs.",
                    id=ID.format("W001"),
                )
            )

    for setting in ("DEFAULT_ANALYSES", "ASYNC_TYPES"):
        for name in getattr(app_settings, setting) or ():
            spec_type = name if isinstance(name, str) else getattr(name, "type", name)
            if isinstance(spec_type, str) and spec_type in analyses.ANALYSIS_TYPES:
                continue
            if setting == "DEFAULT_ANALYSES" and not isinstance(name, str):
                continue  # structured entries are checked with the models
            errors.append(
                checks.Error(
                    f"CLOUDINARY_ANALYSIS['{setting}'] names an unknown analysis "
                    f"type {name!r}.",
                    hint=_types_hint(),
                    id=ID.format("E002"),
                )
            )

    async_types = app_settings.async_types
    if async_types:
        url = app_settings.WEBHOOK_URL
        if not url or urlsplit(str(url)).scheme not in ("http", "https"):
            errors.append(
                checks.Error(
                    "CLOUDINARY_ANALYSIS['ASYNC_TYPES'] is set but WEBHOOK_URL is "
                    "not an absolute URL, so results could never arrive.",
                    hint="Set WEBHOOK_URL to the public URL of the webhook view, "
                    "e.g. 'https://www.example.com/cloudinary-analysis/webhook/'.",
                    id=ID.format("E008"),
                )
            )
        for name in sorted(async_types):
            kind = analyses.ANALYSIS_TYPES.get(name)
            if kind is not None and not kind.async_allowed:
                errors.append(
                    checks.Warning(
                        f"{name} cannot run asynchronously; it will run synchronously.",
                        hint=f"Remove {name!r} from ASYNC_TYPES.",
                        id=ID.format("W002"),
                    )
                )

    if app_settings.ON_FAILURE not in ("review", "pending"):
        errors.append(
            checks.Error(
                f"CLOUDINARY_ANALYSIS['ON_FAILURE'] = {app_settings.ON_FAILURE!r} "
                "is not one of 'review', 'pending'.",
                id=ID.format("E009"),
            )
        )

    for rule in app_settings.LABEL_RULES or ():
        ok = (
            isinstance(rule, dict)
            and rule.get("type") in analyses.ANALYSIS_TYPES
            and (rule.get("review") is not None or rule.get("reject") is not None)
        )
        if not ok:
            errors.append(
                checks.Error(
                    f"CLOUDINARY_ANALYSIS['LABEL_RULES'] entry {rule!r} is malformed.",
                    hint="Each rule is {'type': <analysis type>, 'label': <name or "
                    "'*'>, 'review': <confidence or None>, 'reject': <confidence "
                    "or None>}.",
                    id=ID.format("E011"),
                )
            )
    return errors


def check_models(
    app_configs: Iterable[Any] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Validate each mixin model's ``AnalysisMeta``."""
    from django.db import models

    from django_cloudinary_analysis import analyses
    from django_cloudinary_analysis.exceptions import InvalidParameters
    from django_cloudinary_analysis.mixins import AnalyzedMedia, analysis_config
    from django_cloudinary_analysis.services import effective_params

    errors: list[checks.CheckMessage] = []
    configs = app_configs or apps.get_app_configs()
    for app_config in configs:
        for model in app_config.get_models():
            if not issubclass(model, AnalyzedMedia):
                continue
            label = model._meta.label
            try:
                config = analysis_config(model)
            except (TypeError, ValueError, ImproperlyConfigured) as exc:
                errors.append(
                    checks.Error(
                        f"{label}.AnalysisMeta cannot be read: {exc}",
                        obj=model,
                        id=ID.format("E007"),
                    )
                )
                continue
            for field_name, specs in config.items():
                try:
                    field = model._meta.get_field(field_name)
                    is_file = isinstance(field, models.FileField) or (
                        type(field).__name__ == "CloudinaryField"
                    )
                except FieldDoesNotExist:
                    is_file = False
                if not is_file:
                    errors.append(
                        checks.Error(
                            f"{label}.AnalysisMeta names {field_name!r}, which is not "
                            "a file field of the model.",
                            hint="List FileField, ImageField or CloudinaryField names.",
                            obj=model,
                            id=ID.format("E006"),
                        )
                    )
                for spec in specs:
                    if spec.type not in analyses.ANALYSIS_TYPES:
                        errors.append(
                            checks.Error(
                                f"{label}.AnalysisMeta: unknown analysis type "
                                f"{spec.type!r} for {field_name!r}.",
                                hint=_types_hint(),
                                obj=model,
                                id=ID.format("E003"),
                            )
                        )
                        continue
                    try:
                        analyses.validate_extras(spec.type, effective_params(spec))
                    except InvalidParameters as exc:
                        errors.append(
                            checks.Error(
                                f"{label}.AnalysisMeta: {spec.type} on "
                                f"{field_name!r}: {exc}",
                                obj=model,
                                id=ID.format("E004"),
                            )
                        )
    return errors


_CREDENTIALS_HINT = (
    "Set CLOUDINARY_ANALYSIS = {'CLOUD_NAME': ..., 'API_KEY': ..., 'API_SECRET': ...} "
    "or the CLOUDINARY_URL environment variable "
    "(cloudinary://API_KEY:API_SECRET@CLOUD_NAME)."
)


def _types_hint() -> str:
    from django_cloudinary_analysis import analyses

    return "Known types: " + ", ".join(sorted(analyses.ANALYSIS_TYPES)) + "."
