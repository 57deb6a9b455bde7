"""Settings of the worker that pushes to the fake Cloudinary (write-back tests).

The integration settings plus ``SYNC_TO_CLOUDINARY``; pycloudinary reaches
the fake through ``CLOUDINARY_URL`` (its ``upload_prefix``), set by the test.
"""

from __future__ import annotations

from tests.integration.settings import *  # noqa: F403
from tests.integration.settings import CLOUDINARY_ANALYSIS as _ANALYSIS

#: The test process applies the same values (see test_cloudinary_sync.py).
SYNC_TO_CLOUDINARY = {"tags": True, "moderation": True, "tag_prefix": "ai:"}

CLOUDINARY_ANALYSIS = {**_ANALYSIS, "SYNC_TO_CLOUDINARY": SYNC_TO_CLOUDINARY}
