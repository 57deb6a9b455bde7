"""Request parsers of the API: bounded in size and nesting, never a 500.

DRF's JSONParser turns only ``ValueError`` into a 400, so a body of 50,000
nested brackets raised ``RecursionError`` (a 500), and DRF's CSRF check
parses the body before any permission is checked. These endpoints take a
few small fields; bodies beyond ``max_body_size`` answer 413, deeper than
``max_depth``, non-finite numbers or anything not JSON answer 400.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import IO, Any

from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, status
from rest_framework.parsers import (
    BaseParser,
    FormParser,
    JSONParser,
    MultiPartParser,
)

from django_cloudinary_analysis import payloads

__all__ = ["PARSER_CLASSES", "BoundedJSONParser", "RequestTooLarge"]


class RequestTooLarge(exceptions.APIException):
    """The body is larger than the endpoint reads."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = _("The request body is too large.")
    default_code = "request_too_large"


class BoundedJSONParser(JSONParser):
    """JSON with a size cap, a depth cap and no NaN or Infinity."""

    #: Bytes read at most.
    max_body_size = 256 * 1024
    #: Deepest nesting accepted.
    max_depth = 16

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        """Read at most ``max_body_size`` bytes and parse them strictly."""
        # Django's DATA_UPLOAD_MAX_MEMORY_SIZE, when lower, refuses first (400).
        limit = self.max_body_size
        body = stream.read(limit + 1)
        if len(body) > limit:
            raise RequestTooLarge()
        try:
            value = payloads.loads(body)
            return payloads.clean(value, max_depth=self.max_depth)
        except payloads.InvalidPayload as exc:
            raise exceptions.ParseError(
                _("JSON parse error: %(reason)s") % {"reason": exc}
            ) from None


#: What the app's viewsets accept: bounded JSON, plus forms for the browsable API.
PARSER_CLASSES: Sequence[type[BaseParser]] = (
    BoundedJSONParser,
    FormParser,
    MultiPartParser,
)
