"""Deprecated name of :mod:`django_cloudinary_analysis.analysis_types`.

The registry of analysis types was renamed so that it no longer reads like the
``Analysis`` model's module. Import ``analysis_types`` instead; this alias
will be removed in a later release. It also keeps the old names for params:
``validate_extras`` and ``MAX_EXTRA_ITEMS``.
"""

from __future__ import annotations

import warnings
from typing import Any

from django_cloudinary_analysis import analysis_types as _analysis_types
from django_cloudinary_analysis.analysis_types import *  # noqa: F403
from django_cloudinary_analysis.analysis_types import (
    MAX_PARAM_ITEMS,
    validate_params,
)

#: The registry's old names for params ("extras").
MAX_EXTRA_ITEMS = MAX_PARAM_ITEMS
validate_extras = validate_params

warnings.warn(
    "django_cloudinary_analysis.analyses is deprecated; import "
    "django_cloudinary_analysis.analysis_types instead.",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name: str) -> Any:
    """Forward the registry's other names (constants, private helpers)."""
    return getattr(_analysis_types, name)
