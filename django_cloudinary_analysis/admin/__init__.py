"""Admin for analyses, tags and verdicts, the review queue, and a ModelAdmin mixin.

Everything the pipeline stores is read-only here: results are never edited
by hand. Changes go through :mod:`django_cloudinary_analysis.services`
(re-run, approve, reject, release).

The package is split by role: ``display`` (rendering helpers and shared
columns), ``changelists`` (page-at-once loading, analyses and tags),
``queue`` (the review queue and history), ``views`` (the per-object review
page), ``actions`` (actions and their forms), ``inlines`` and ``mixin``
(``AnalyzedMediaAdmin`` for a site's own models). Importing the package
registers the app's admins.
"""

from __future__ import annotations

from django_cloudinary_analysis.admin.changelists import (
    AnalysisAdmin,
    MediaTagAdmin,
    ReadOnlyAdmin,
)
from django_cloudinary_analysis.admin.inlines import (
    AnalysisInline,
    MediaTagInline,
    ModerationDecisionInline,
    ReadOnlyGenericInline,
)
from django_cloudinary_analysis.admin.mixin import AnalyzedMediaAdmin
from django_cloudinary_analysis.admin.queue import ModerationDecisionAdmin

__all__ = [
    "AnalysisAdmin",
    "AnalysisInline",
    "AnalyzedMediaAdmin",
    "MediaTagAdmin",
    "MediaTagInline",
    "ModerationDecisionAdmin",
    "ModerationDecisionInline",
    "ReadOnlyAdmin",
    "ReadOnlyGenericInline",
]
