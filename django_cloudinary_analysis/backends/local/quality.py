"""``image_quality`` offline: classical metrics graded by a fixed heuristic.

Focus from the variance of the Laplacian, exposure, RMS contrast, noise, JPEG
quality and resolution, mapped to ``quality``/``score``/``confidence``. It is
**not** Cloudinary's learned model, and the result says so (``model``).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from django_cloudinary_analysis.backends.local.decoding import _to_rgb

if TYPE_CHECKING:
    from PIL import Image

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
