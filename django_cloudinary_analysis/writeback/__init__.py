"""Write results back where sites use them (all opt-in).

* ``AnalysisMeta.alt_text_field``: the caption goes to the model's alt text.
* ``AnalysisMeta.tags_field``: labels become django-taggit tags.
* ``SYNC_TO_CLOUDINARY``: tags and verdicts go to the asset on Cloudinary.

Everything hooks into the app's own ``analysis_finished`` and
``moderation_changed`` signals, which are sent after the result commits.
"""

from __future__ import annotations

DISPATCH_PREFIX = "cloudinary_analysis.writeback"


def connect() -> None:
    """Connect the write-back receivers (called from the AppConfig)."""
    from django.apps import apps
    from django.db.models.signals import post_delete

    from django_cloudinary_analysis import signals
    from django_cloudinary_analysis.mixins import media_models
    from django_cloudinary_analysis.writeback import receivers

    signals.analysis_finished.connect(
        receivers.analysis_finished, dispatch_uid=DISPATCH_PREFIX + ":finished"
    )
    signals.moderation_changed.connect(
        receivers.moderation_changed, dispatch_uid=DISPATCH_PREFIX + ":moderation"
    )
    for model in media_models(proxies=True):
        post_delete.connect(
            receivers.object_deleted,
            sender=model,
            dispatch_uid=f"{DISPATCH_PREFIX}:{model._meta.label_lower}:del",
        )
    if apps.is_installed("django.contrib.admin"):
        from django_cloudinary_analysis.writeback import admin  # noqa: F401
