"""``tests.settings`` plus the misconfigured app (for ``manage.py check``)."""

from __future__ import annotations

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS as _APPS

INSTALLED_APPS = [*_APPS, "tests.integration.badapp"]
