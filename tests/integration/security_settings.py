"""The integration site as the security tests serve it under gunicorn.

``tests.integration.settings`` plus: DEBUG from ``DCA_SEC_DEBUG``, error mails
with the HTML report written to ``DCA_SEC_MAIL_DIR``, tasks run in the
request (no broker given), and an object rule: users see photos titled
``"<username>: …"``.
"""

from __future__ import annotations

import os
from typing import Any

from tests.integration.settings import *  # noqa: F403
from tests.integration.settings import CLOUDINARY_ANALYSIS as _ANALYSIS

DEBUG = os.environ.get("DCA_SEC_DEBUG") == "1"
ADMINS = [("Admin", "admin@example.com")]
EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = os.environ.get("DCA_SEC_MAIL_DIR", "/tmp/dca-sec-mail")
# Sites keep their credentials in URL-valued settings too: Django hides
# settings by name only, the app's filter hides the password inside the URL.
CLOUDINARY_URL = (
    f"cloudinary://{_ANALYSIS.get('API_KEY', 'key')}:"
    f"{_ANALYSIS.get('API_SECRET', 'tests-api-secret-value')}@demo"
)
DEFAULT_EXCEPTION_REPORTER_FILTER = (
    "django_cloudinary_analysis.error_reports.SafeExceptionReporterFilter"
)
CLOUDINARY_ANALYSIS = {
    **_ANALYSIS,
    "API_OBJECT_FILTER": "tests.integration.security_settings.own_photos",
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "mail_admins": {
            "class": "django.utils.log.AdminEmailHandler",
            "include_html": True,
            "level": "ERROR",
        },
        "stderr": {"class": "logging.StreamHandler", "level": "INFO"},
    },
    "loggers": {
        "django.request": {"handlers": ["mail_admins", "stderr"], "level": "ERROR"},
    },
    "root": {"handlers": ["stderr"], "level": "INFO"},
}


def own_photos(request: Any, queryset: Any) -> Any:
    """Photos titled ``"<username>: …"``; nothing of the other models."""
    if queryset.model.__name__ == "Photo":
        return queryset.filter(title__startswith=f"{request.user.get_username()}:")
    return queryset.none()
