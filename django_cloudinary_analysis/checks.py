"""System checks for every misconfiguration a site can make.

Ledger of ids (never reuse one, even after a check is removed):
E001 credentials missing for the Cloudinary backend (``check --deploy`` only)
E002 unknown analysis type in DEFAULT_ANALYSES or ASYNC_TYPES
E003 unknown analysis type in a model's AnalysisMeta
E004 params an analysis type does not accept, or required params missing
E005 an import path (BACKEND, SOURCE_RESOLVER, MODERATION_POLICY) is wrong
E006 a model's AnalysisMeta names a field that is not a file field
E007 a model's AnalysisMeta cannot be read
E008 ASYNC_TYPES set without an absolute WEBHOOK_URL
E009 ON_FAILURE is neither "review" nor "pending"
E010 CLOUDINARY_URL is malformed
E011 LABEL_RULES entries are malformed
W001 a storage the models use gives relative URLs and no MEDIA_BASE_URL is set
W002 an analysis type in ASYNC_TYPES cannot run async (it runs synchronously)
W003 credentials missing for the Cloudinary backend (development: migrate,
     runserver and the rest keep working; ``check --deploy`` reports E001)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db.models import FileField
from django.utils.module_loading import import_string

TAG = "cloudinary_analysis"
ID = "cloudinary_analysis.{}"


def register() -> None:
    """Register the app's checks with Django."""
    checks.register(check_settings, TAG)
    checks.register(check_models, TAG, checks.Tags.models)
    checks.register(check_deploy, TAG, deploy=True)


def _uses_cloudinary_backend(backend: str) -> bool:
    try:
        from django_cloudinary_analysis.backends.cloudinary import CloudinaryBackend

        cls = import_string(backend)
        return isinstance(cls, type) and issubclass(cls, CloudinaryBackend)
    except ImportError:
        return False


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Validate ``CLOUDINARY_ANALYSIS`` and the credentials."""
    from django_cloudinary_analysis import analysis_types
    from django_cloudinary_analysis.conf import IMPORT_STRINGS, app_settings

    errors: list[checks.CheckMessage] = []
    for setting in IMPORT_STRINGS:
        value = getattr(app_settings, setting)
        for path in value if isinstance(value, list) else [value]:
            if path is None:
                continue
            try:
                import_string(path)
            except ImportError as exc:
                errors.append(
                    checks.Error(
                        f"CLOUDINARY_ANALYSIS['{setting}'] = {path!r} cannot be "
                        "imported.",
                        hint=str(exc),
                        id=ID.format("E005"),
                    )
                )

    if _uses_cloudinary_backend(app_settings.BACKEND):
        errors.extend(_credential_messages(checks.Warning, "W003"))
        errors.extend(_relative_url_warnings())

    for setting in ("DEFAULT_ANALYSES", "ASYNC_TYPES"):
        for name in getattr(app_settings, setting) or ():
            spec_type = name if isinstance(name, str) else getattr(name, "type", name)
            if (
                isinstance(spec_type, str)
                and spec_type in analysis_types.ANALYSIS_TYPES
            ):
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
            kind = analysis_types.ANALYSIS_TYPES.get(name)
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
            and rule.get("type") in analysis_types.ANALYSIS_TYPES
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


def check_deploy(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``check --deploy``: missing credentials are an error before going live."""
    from django_cloudinary_analysis.conf import app_settings

    if not _uses_cloudinary_backend(app_settings.BACKEND):
        return []
    return [
        m
        for m in _credential_messages(checks.Error, "E001")
        if m.id == ID.format("E001")
    ]


def _credential_messages(
    level: type[checks.Warning] | type[checks.Error], missing_id: str
) -> list[checks.CheckMessage]:
    """E010 for a malformed CLOUDINARY_URL, else ``missing_id`` if incomplete."""
    from django_cloudinary_analysis.conf import app_settings
    from django_cloudinary_analysis.exceptions import ConfigurationError

    try:
        creds = app_settings.credentials
    except ConfigurationError as exc:
        return [checks.Error(str(exc), hint=_CREDENTIALS_HINT, id=ID.format("E010"))]
    if creds.complete:
        return []
    msg = "Cloudinary credentials are missing: " + ", ".join(creds.missing()) + "."
    if level is checks.Warning:
        msg += (
            " Analyses will fail with this reason until they are set; "
            "`check --deploy` reports it as an error."
        )
    return [level(msg, hint=_CREDENTIALS_HINT, id=ID.format(missing_id))]


def _relative_url_warnings() -> list[checks.CheckMessage]:
    """W001 for each storage of an analysed field that gives relative URLs.

    Storage classes are read from settings (``STORAGES`` or, on Django 4.2,
    ``DEFAULT_FILE_STORAGE``), never instantiated: a storage such as
    django-cloudinary-storage's configures itself on first use.
    """
    from django_cloudinary_analysis.conf import app_settings
    from django_cloudinary_analysis.mixins import media_models
    from django_cloudinary_analysis.options import analysis_config

    if app_settings.MEDIA_BASE_URL:
        return []
    seen: dict[str, str] = {}
    for model in media_models(proxies=True):
        try:
            field_names = list(analysis_config(model))
        except (TypeError, ValueError, ImproperlyConfigured):
            continue  # E007 reports it
        for name in field_names:
            try:
                field = model._meta.get_field(name)
            except FieldDoesNotExist:
                continue  # E006 reports it
            if not isinstance(field, FileField):
                continue
            found = _relative_base_url(field)
            if found is not None:
                seen.setdefault(found[0], found[1])
    return [
        checks.Warning(
            f"The storage {label} gives relative URLs ({base_url!r}), so the "
            "Analyze API cannot fetch the files it keeps.",
            hint="Set CLOUDINARY_ANALYSIS['MEDIA_BASE_URL'] to the site's public "
            "origin, e.g. 'https://www.example.com', or store media on "
            "Cloudinary or another storage with absolute URLs.",
            id=ID.format("W001"),
        )
        for label, base_url in seen.items()
    ]


def _relative_base_url(field: FileField) -> tuple[str, str] | None:
    """(storage label, base URL) when the field's storage URLs are relative."""
    from django.core.files.storage import FileSystemStorage, default_storage

    storage = field.storage
    if storage is default_storage:
        path, options = _default_storage_setting()
        try:
            cls = import_string(path)
        except ImportError:
            return None
        if not (isinstance(cls, type) and issubclass(cls, FileSystemStorage)):
            return None
        base_url = str(options.get("base_url") or settings.MEDIA_URL or "")
        label = path
    elif isinstance(storage, FileSystemStorage):
        base_url = str(storage.base_url or "")
        label = f"{type(storage).__module__}.{type(storage).__qualname__}"
    else:
        return None
    if urlsplit(base_url).scheme:
        return None
    return label, base_url


def _default_storage_setting() -> tuple[str, dict[str, Any]]:
    """The default storage's class path and options, as configured."""
    storages = getattr(settings, "STORAGES", None) or {}
    default = storages.get("default") or {}
    legacy = getattr(settings, "DEFAULT_FILE_STORAGE", None)
    if legacy and not default.get("BACKEND"):
        return str(legacy), {}
    path = default.get("BACKEND") or "django.core.files.storage.FileSystemStorage"
    return str(path), dict(default.get("OPTIONS") or {})


def check_models(
    app_configs: Iterable[Any] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Validate each mixin model's ``AnalysisMeta``."""
    from django.db import models

    from django_cloudinary_analysis import analysis_types
    from django_cloudinary_analysis.exceptions import InvalidParameters
    from django_cloudinary_analysis.mixins import media_models
    from django_cloudinary_analysis.options import analysis_config, effective_params
    from django_cloudinary_analysis.sources import is_cloudinary_field

    errors: list[checks.CheckMessage] = []
    for model in media_models(proxies=True, app_configs=app_configs or None):
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
                    is_cloudinary_field(field)
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
                if spec.type not in analysis_types.ANALYSIS_TYPES:
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
                    analysis_types.validate_params(spec.type, effective_params(spec))
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
    from django_cloudinary_analysis import analysis_types

    return "Known types: " + ", ".join(sorted(analysis_types.ANALYSIS_TYPES)) + "."


# The write-back checks (E020–E023, W020–W021) live with the write-back; this
# import registers them with the others.
from django_cloudinary_analysis.writeback.checks import check_writeback  # noqa: E402, F401
