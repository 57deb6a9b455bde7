"""Deterministic synthetic images whose truth is known, as file bytes.

Every function returns the same bytes on every call (seeded, no clock, no
network), so tests, the demo seeding and the benchmarks can rely on exact
expectations. The base "scene" is drawn with hard edges and fine texture so it
is sharp; the variants degrade it in one known way each.
"""

from __future__ import annotations

import io
import random
from functools import cache, lru_cache

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

#: The size of the base scene (0.79 MP).
SCENE_SIZE = (1024, 768)
#: JPEG quality of the scene variants, and of the near-duplicate.
SCENE_QUALITY = 90
DUPLICATE_QUALITY = 60
#: The lines drawn by ``text_png`` (what OCR should read back).
TEXT_LINES = ("Hello Cloudinary", "Offline OCR test")


def scene(width: int = SCENE_SIZE[0], height: int = SCENE_SIZE[1]) -> Image.Image:
    """Draw the sharp, well-exposed RGB base scene at any size."""
    rng = random.Random(1234)
    # A soft diagonal gradient background (mid-tones, nothing clipped).
    x = Image.linear_gradient("L").resize((width, height))
    y = x.transpose(Image.Transpose.ROTATE_90).resize((width, height))
    img = Image.merge(
        "RGB",
        (
            x.point(lambda v: 60 + v * 120 // 255),
            y.point(lambda v: 70 + v * 100 // 255),
            Image.blend(x, y, 0.5).point(lambda v: 150 - v * 80 // 255),
        ),
    )
    draw = ImageDraw.Draw(img)
    sx, sy = width / 1024, height / 768
    for _ in range(40):
        x0, y0 = rng.uniform(0, 1000) * sx, rng.uniform(0, 740) * sy
        w, h = rng.uniform(30, 220) * sx, rng.uniform(30, 220) * sy
        colour = (rng.randint(20, 235), rng.randint(20, 235), rng.randint(20, 235))
        if rng.random() < 0.5:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=colour)
        else:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
    # Fine detail: thin lines and a checkerboard patch give real high frequencies.
    for _ in range(60):
        pts = [(rng.uniform(0, width), rng.uniform(0, height)) for _ in range(2)]
        shade = rng.randint(10, 245)
        draw.line(pts, fill=(shade, shade, shade), width=max(1, round(2 * sx)))
    cell = max(2, round(6 * sx))
    for cy in range(round(520 * sy), round(700 * sy), cell):
        for cx in range(round(60 * sx), round(300 * sx), cell):
            if (cx // cell + cy // cell) % 2:
                draw.rectangle(
                    (cx, cy, cx + cell - 1, cy + cell - 1), fill=(30, 30, 30)
                )
    return img


def jpeg_bytes(img: Image.Image, quality: int = SCENE_QUALITY) -> bytes:
    """Encode an image as baseline JPEG bytes with the IJG tables at ``quality``."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def encode_png(img: Image.Image) -> bytes:
    """Encode an image as PNG bytes."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def png_bytes(seed: int = 0, size: tuple[int, int] = (32, 24)) -> bytes:
    """A small PNG whose bytes differ for every ``seed`` below 2**24.

    The colour follows the seed and the first pixel spells it out, so seeds
    that share a colour (they wrap at 256) still make different files.
    """
    img = Image.new("RGB", size, ((seed * 37) % 256, (seed * 91) % 256, 120))
    img.putpixel((0, 0), (seed % 256, (seed >> 8) % 256, (seed >> 16) % 256))
    return encode_png(img)


@cache
def sharp_jpeg(quality: int = SCENE_QUALITY) -> bytes:
    """Return the sharp, well-exposed scene as a JPEG (quality 90 by default)."""
    return jpeg_bytes(scene(), quality)


@cache
def sharp_png() -> bytes:
    """Return the sharp scene as a PNG (no JPEG quality to estimate)."""
    return encode_png(scene())


@cache
def blurred_jpeg(radius: float = 6) -> bytes:
    """Return the scene under a Gaussian blur (out of focus)."""
    return jpeg_bytes(scene().filter(ImageFilter.GaussianBlur(radius)))


@cache
def dark_jpeg(factor: float = 0.15) -> bytes:
    """Return the scene darkened to ``factor`` of its brightness (under-exposed)."""
    return jpeg_bytes(ImageEnhance.Brightness(scene()).enhance(factor))


@cache
def bright_jpeg() -> bytes:
    """Return the scene washed out towards white with clipped highlights."""
    img = scene().point(lambda v: min(255, 150 + v))
    return jpeg_bytes(img)


@cache
def noisy_jpeg(sigma: float = 35) -> bytes:
    """Return the scene with seeded Gaussian noise of standard deviation ``sigma``."""
    import numpy as np

    rng = np.random.default_rng(42)
    arr = np.asarray(scene(), dtype=np.float32)
    arr = arr + rng.normal(0, sigma, arr.shape).astype(np.float32)
    return jpeg_bytes(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)))


@cache
def near_duplicate_jpeg() -> bytes:
    """Return the scene downscaled to 800×600 and saved at quality 60."""
    small = scene().resize((800, 600), Image.Resampling.LANCZOS)
    return jpeg_bytes(small, DUPLICATE_QUALITY)


@cache
def text_png() -> bytes:
    """Return large black text on white (``TEXT_LINES``) that Tesseract reads."""
    img = Image.new("RGB", (1000, 300), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=64)
    for i, line in enumerate(TEXT_LINES):
        draw.text((40, 50 + i * 110), line, fill="black", font=font)
    return encode_png(img)


@cache
def rgba_png() -> bytes:
    """Return the scene with a transparent border, as an RGBA PNG."""
    img = scene().convert("RGBA")
    alpha = Image.new("L", img.size, 0)
    ImageDraw.Draw(alpha).rectangle((100, 100, 924, 668), fill=255)
    img.putalpha(alpha)
    return encode_png(img)


@lru_cache(maxsize=4)
def large_jpeg(width: int = 4000, height: int = 3000) -> bytes:
    """Return the scene drawn at ``width``×``height`` (12 MP by default) as JPEG."""
    return jpeg_bytes(scene(width, height))


def truncated_jpeg() -> bytes:
    """Return the first half of the sharp JPEG (a cut-off upload)."""
    data = sharp_jpeg()
    return data[: len(data) // 2]


def not_an_image() -> bytes:
    """Return bytes that are plainly not an image."""
    return b"This is a plain text file, not an image.\n" * 4


def empty_file() -> bytes:
    """Return an empty file's content."""
    return b""


#: File name → content for the sample set the demo and integration tests use.
SAMPLES = {
    "sharp.jpg": sharp_jpeg,
    "blurred.jpg": blurred_jpeg,
    "dark.jpg": dark_jpeg,
    "bright.jpg": bright_jpeg,
    "noisy.jpg": noisy_jpeg,
    "text.png": text_png,
    "near_duplicate.jpg": near_duplicate_jpeg,
}
