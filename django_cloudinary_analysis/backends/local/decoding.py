"""Decoding an upload once: a small RGB working copy plus facts about the file."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django_cloudinary_analysis.exceptions import SourceError

if TYPE_CHECKING:
    from PIL import Image

logger = logging.getLogger(__name__)

#: Images with more pixels are refused before they are decoded fully.
MAX_PIXELS = 100_000_000

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
    max_pixels: int = MAX_PIXELS,
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
