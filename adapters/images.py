"""Image intake with Pillow: the type is what decodes, never the file name or the client's word;
bombs and broken files are refused; what is kept is re-encoded upright with no metadata (EXIF,
GPS, camera serials), plus a thumbnail and a perceptual hash for spotting reused photos."""

from __future__ import annotations

import hashlib
import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from service.ports import ImageRejected, ProcessedImage

register_heif_opener()

ACCEPTED = {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp", "HEIF": "heif"}
# What each accepted format is stored as: browsers can't show HEIC, so phones' photos become JPEG.
_STORED_AS = {"jpeg": ("JPEG", "image/jpeg"), "png": ("PNG", "image/png"), "webp": ("WEBP", "image/webp"), "heif": ("JPEG", "image/jpeg")}


class PillowImageProcessor:
    def __init__(self, max_pixels: int = 40_000_000, thumbnail_size: int = 320) -> None:
        self.max_pixels = max_pixels
        self.thumbnail_size = thumbnail_size

    def process(self, data: bytes) -> ProcessedImage:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                return self._process(data)
            except ImageRejected:
                raise
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise ImageRejected("the image is too large to decode safely", code="validation_error") from exc
            except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated or corrupt data
                raise ImageRejected(f"the image could not be decoded: {exc}", code="validation_error") from exc

    def _process(self, data: bytes) -> ProcessedImage:
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError as exc:
            raise ImageRejected("not a JPEG, PNG, WebP or HEIC image", code="unsupported_media_type") from exc
        detected = ACCEPTED.get(image.format or "")
        if detected is None:
            raise ImageRejected(f"{image.format} images are not accepted; send JPEG, PNG, WebP or HEIC", code="unsupported_media_type")
        width, height = image.size
        if width * height > self.max_pixels:
            raise ImageRejected(f"{width}×{height} pixels is more than the {self.max_pixels} allowed", code="validation_error")
        image.load()  # decodes everything: truncated data fails here
        upright = ImageOps.exif_transpose(image)
        pixels = _without_metadata(upright)
        stored_format, content_type = _STORED_AS[detected]
        return ProcessedImage(
            original_sha256=hashlib.sha256(data).hexdigest(),
            detected_format=detected,
            content_type=content_type,
            image=_encode(pixels, stored_format),
            thumbnail=self._thumbnail(pixels),
            thumbnail_content_type="image/jpeg",
            width=pixels.width,
            height=pixels.height,
            perceptual_hash=dhash(pixels),
        )

    def _thumbnail(self, image: Image.Image) -> bytes:
        thumbnail = image.copy()
        thumbnail.thumbnail((self.thumbnail_size, self.thumbnail_size))
        return _encode(thumbnail, "JPEG")


def _without_metadata(image: Image.Image) -> Image.Image:
    """Only the pixels: a fresh image carries no EXIF, GPS, XMP or ICC from the upload."""
    if image.mode in ("RGB", "RGBA", "L", "LA"):
        mode = image.mode
    elif "A" in image.getbands() or "transparency" in image.info:
        mode = "RGBA"
    else:  # palette, CMYK, 16-bit grey, …
        mode = "RGB"
    converted = image.convert(mode)
    clean = Image.new(mode, converted.size)
    clean.paste(converted)
    return clean


def _encode(image: Image.Image, image_format: str) -> bytes:
    if image_format == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    out = io.BytesIO()
    options = {"quality": 90} if image_format in ("JPEG", "WEBP") else {"optimize": True}
    image.save(out, format=image_format, **options)
    return out.getvalue()


def dhash(image: Image.Image) -> str:
    """64-bit difference hash: each bit says whether a pixel is brighter than its right neighbour
    on a 9×8 grey thumbnail. Survives re-encoding and resizing; 16 hex digits."""
    grey = image.convert("L").resize((9, 8), Image.Resampling.LANCZOS)
    pixels = grey.tobytes()  # one byte per pixel, row by row
    bits = 0
    for row in range(8):
        for column in range(8):
            left, right = pixels[row * 9 + column], pixels[row * 9 + column + 1]
            bits = (bits << 1) | (left > right)
    return f"{bits:016x}"
