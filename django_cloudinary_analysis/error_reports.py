"""An exception reporter filter that also hides passwords inside URLs.

Django's ``SafeExceptionReporterFilter`` hides settings whose *name* looks
secret (``API``, ``KEY``, ``SECRET``, ``TOKEN``…). ``CLOUDINARY_URL``,
``DATABASE_URL`` or a Redis ``CELERY_BROKER_URL`` carry a password in their
*value* under a harmless name, so a DEBUG page or an HTML error mail shows
it. This filter replaces the password part of every ``scheme://user:password@``
it finds in settings, request metadata and frame variables::

    DEFAULT_EXCEPTION_REPORTER_FILTER = (
        "django_cloudinary_analysis.error_reports.SafeExceptionReporterFilter"
    )
"""

from __future__ import annotations

import re
from typing import Any

from django.views import debug

#: ``scheme://user:`` kept, the password up to the ``@`` replaced.
URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s/:@]*:)[^\s/@]+@", re.I)


def hide_url_passwords(text: str, substitute: str = "********************") -> str:
    """``text`` with the password of every URL in it replaced."""
    return URL_PASSWORD.sub(lambda m: f"{m.group(1)}{substitute}@", text)


class SafeExceptionReporterFilter(debug.SafeExceptionReporterFilter):
    """Django's filter, plus passwords inside URL values."""

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        value = super().cleanse_setting(key, value)
        if isinstance(value, str):
            return hide_url_passwords(value, self.cleansed_substitute)
        return value

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        return [
            (
                name,
                hide_url_passwords(value, self.cleansed_substitute)
                if isinstance(value, str)
                else value,
            )
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]
