"""``cld_text`` offline: words and boxes from Tesseract.

Reliable on documents, screenshots and clean overlays, weak on text inside
photos.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

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


def text_analysis(words: list[dict[str, Any]]) -> dict[str, Any]:
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
