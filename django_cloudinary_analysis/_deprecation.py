"""Aliases that keep renamed names working for a while, with a warning."""

from __future__ import annotations

import warnings
from typing import Any


def renamed_attribute(new: str, old: str) -> property:
    """A property ``old`` that reads and writes ``new`` and warns on each use.

    It is a real :class:`property`, so a model also accepts the old name as a
    constructor keyword (``MediaTag(analysis_type=...)``); querysets do not (lookups
    need the field's own name).
    """
    message = f"{old} is deprecated; use {new}."

    def get(self: Any) -> Any:
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        return getattr(self, new)

    def set_(self: Any, value: Any) -> None:
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        setattr(self, new, value)

    return property(get, set_, doc=f"Deprecated alias of ``{new}``.")
