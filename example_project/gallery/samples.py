"""The demo's sample images: real photographs, and generated ones.

The photographs are public-domain and CC0 sample images of scikit-image,
shipped small in ``example_project/sample_photos/`` (attribution and licence
in the repository's NOTICE file). The generated ones (Pillow and numpy,
seeded, offline) each have one known property: a sharp scene, the same scene
blurred, darkened or washed out, and large text that OCR reads. A byte-for-byte
copy of the cat photo under another file name shows that identical content
reuses the earlier analyses.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SIZE = (960, 640)
PHOTO_DIR = Path(__file__).resolve().parent.parent / "sample_photos"


def photo(file_name: str) -> bytes:
    """Return the bytes of a shipped photograph."""
    return (PHOTO_DIR / file_name).read_bytes()


def scene(seed: int = 2024, size: tuple[int, int] = SIZE) -> Image.Image:
    """Draw a sharp, well-exposed RGB scene: gradient, shapes and fine texture."""
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            70 + 110 * xx / width,
            80 + 90 * yy / height,
            170 - 80 * (xx + yy) / (width + height),
        ],
        axis=-1,
    )
    img = Image.fromarray(base.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(36):
        x0, y0 = rng.uniform(0, width - 40), rng.uniform(0, height - 40)
        w, h = rng.uniform(30, 200, size=2)
        colour = tuple(int(c) for c in rng.integers(25, 230, size=3))
        box = (x0, y0, x0 + w, y0 + h)
        if rng.random() < 0.5:
            draw.rectangle(box, fill=colour, outline=(15, 15, 15), width=2)
        else:
            draw.ellipse(box, fill=colour, outline=(240, 240, 240), width=2)
    for _ in range(50):
        x0, y0, x1, y1 = rng.uniform(0, 1, size=4) * (width, height, width, height)
        shade = int(rng.integers(10, 245))
        draw.line((x0, y0, x1, y1), fill=(shade, shade, shade), width=2)
    # A patch of one-pixel stripes: real high frequencies for the focus metric.
    for x in range(40, 280, 4):
        draw.line((x, height - 200, x, height - 40), fill=(20, 20, 20), width=1)
    return img


def jpeg(img: Image.Image, quality: int = 90) -> bytes:
    """Encode an image as JPEG bytes."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def png(img: Image.Image) -> bytes:
    """Encode an image as PNG bytes."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _adjust(img: Image.Image, scale: float, offset: float) -> Image.Image:
    arr = np.asarray(img, dtype=np.float32) * scale + offset
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def text_card(lines: tuple[str, ...], size: tuple[int, int] = (1000, 360)) -> bytes:
    """Render large black text on white, which Tesseract reads reliably."""
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=72)
    for i, line in enumerate(lines):
        draw.text((50, 50 + i * 130), line, fill="black", font=font)
    return png(img)


@cache
def sharp() -> bytes:
    """Return the sharp scene."""
    return jpeg(scene())


@cache
def blurred() -> bytes:
    """Return the scene out of focus."""
    return jpeg(scene().filter(ImageFilter.GaussianBlur(8)))


@cache
def dark() -> bytes:
    """Return the scene under-exposed (an eighth of its brightness)."""
    return jpeg(_adjust(scene(), 0.12, 0))


@cache
def overexposed() -> bytes:
    """Return the scene washed out towards white, shadows gone."""
    return jpeg(_adjust(scene(), 0.2, 205))


POSTER_TEXT = ("HELLO DJANGO", "OFFLINE DEMO")
LABEL_TEXT = ("ORGANIC COFFEE", "FAIR TRADE 250g")


@cache
def poster() -> bytes:
    """Return a card with two lines of large text."""
    return text_card(POSTER_TEXT)


def product_photo() -> bytes:
    """Return the product's photo: a real cup of espresso."""
    return photo("coffee.jpg")


@cache
def product_label() -> bytes:
    """Return a product label with text."""
    return text_card(LABEL_TEXT)


@dataclass(frozen=True)
class Sample:
    """One demo photo: its title, file name, bytes and what it shows."""

    title: str
    file_name: str
    data: Callable[[], bytes]
    shows: str


PHOTOS = (
    Sample("Chelsea the cat", "cat.jpg", partial(photo, "cat.jpg"), "tags: a cat"),
    Sample(
        "Falcon 9 launch",
        "rocket.jpg",
        partial(photo, "rocket.jpg"),
        "tagged 'missile': a label rule sends it to review",
    ),
    Sample(
        "Cameraman",
        "camera.jpg",
        partial(photo, "camera.jpg"),
        "tags: tripod (greyscale photo)",
    ),
    Sample(
        "Astronaut Eileen Collins",
        "astronaut.jpg",
        partial(photo, "astronaut.jpg"),
        "ImageNet has no 'person': weak, odd guesses",
    ),
    Sample("Sharp scene", "sharp.jpg", sharp, "in focus, well exposed"),
    Sample("Blurred scene", "blurred.jpg", blurred, "out of focus: review"),
    Sample("Dark scene", "dark.jpg", dark, "under-exposed: review"),
    Sample("Overexposed scene", "overexposed.jpg", overexposed, "washed out: review"),
    Sample("Poster with text", "poster.png", poster, "text OCR reads"),
    # Same bytes as the cat under another name: analyses (tags too) are reused.
    Sample(
        "Chelsea (copy)",
        "cat-copy.jpg",
        partial(photo, "cat.jpg"),
        "duplicate of cat.jpg",
    ),
)

PRODUCT_NAME = "Coffee beans"
