"""OpenAPI annotations that work with or without drf-spectacular installed.

drf-spectacular is a test and documentation dependency, not a runtime one:
without it the decorators below leave their target unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

try:
    from drf_spectacular.utils import extend_schema, extend_schema_field

    HAS_SPECTACULAR = True
except ImportError:  # exercised in a subprocess test
    HAS_SPECTACULAR = False

    def _passthrough(*args: Any, **kwargs: Any) -> Callable[[T], T]:
        def decorate(target: T) -> T:
            return target

        return decorate

    extend_schema = _passthrough  # type: ignore[assignment]
    extend_schema_field = _passthrough  # type: ignore[assignment]


__all__ = ["HAS_SPECTACULAR", "extend_schema", "extend_schema_field"]
