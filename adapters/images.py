"""Image intake with Pillow: the type is what decodes, never the file name or the client's word;
bombs and broken files are refused; what is kept is re-encoded upright with no metadata (EXIF,
GPS, camera serials, XMP, ICC), plus a thumbnail and a perceptual hash for spotting reused photos.

Only the JPEG, PNG, WebP and HEIF decoders are ever tried, so Pillow's many other parsers never
see an upload. The pixel limit is checked from the header, before any pixel is decoded.
Pillow's own bomb check (the process-wide ``Image.MAX_IMAGE_PIXELS``) stays as a second line: its
error, and its warning where warnings are errors, are refused too. Warnings are not turned into
errors here because warning filters are process-wide and this runs in several threads at once."""

from __future__ import annotations

import hashlib
import io
import struct

from PIL import ExifTags, Image, UnidentifiedImageError
from pillow_heif import register_heif_opener

from service.ports import ImageRejected, ProcessedImage

register_heif_opener()

# The decoders tried, and what each decoded format is reported as. A JPEG carrying several
# pictures (many phones and cameras write these) decodes as MPO.
_DECODERS = ["JPEG", "PNG", "WEBP", "HEIF"]
_DETECTED = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "WEBP": "webp", "HEIF": "heif"}
# What each accepted format is stored as: browsers can't show HEIC, so phones' photos become JPEG.
_STORED_AS = {
    "jpeg": ("JPEG", "image/jpeg"),
    "png": ("PNG", "image/png"),
    "webp": ("WEBP", "image/webp"),
    "heif": ("JPEG", "image/jpeg"),
}
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
# What Pillow and pillow-heif raise for data that is truncated, corrupt or lies about itself.
_UNDECODABLE = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError, RuntimeError)


class PillowImageProcessor:
    def __init__(self, max_pixels: int = 40_000_000, thumbnail_size: int = 320) -> None:
        self.max_pixels = max_pixels
        self.thumbnail_size = thumbnail_size

    def process(self, data: bytes) -> ProcessedImage:
        try:
            return self._process(data)
        except ImageRejected:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRejected("the image is too large to decode safely", code="validation_error") from exc
        except _UNDECODABLE as exc:
            raise ImageRejected(f"the image could not be decoded: {exc}", code="validation_error") from exc

    def _process(self, data: bytes) -> ProcessedImage:
        try:
            opened = Image.open(io.BytesIO(data), formats=_DECODERS)
        except UnidentifiedImageError as exc:
            raise ImageRejected("not a JPEG, PNG, WebP or HEIC image", code="unsupported_media_type") from exc
        with opened as image:
            detected = _DETECTED[image.format or ""]
            width, height = image.size
            if width * height > self.max_pixels:
                raise ImageRejected(
                    f"{width}×{height} pixels is more than the {self.max_pixels} allowed", code="validation_error"
                )
            image.load()  # decodes everything: truncated or corrupt data fails here
            pixels = _without_metadata(_upright(image))
        stored_format, content_type = _STORED_AS[detected]
        thumbnail = _flattened(pixels.copy())
        thumbnail.thumbnail((self.thumbnail_size, self.thumbnail_size))
        return ProcessedImage(
            original_sha256=hashlib.sha256(data).hexdigest(),
            detected_format=detected,
            content_type=content_type,
            image=_encode(pixels, stored_format),
            thumbnail=_encode(thumbnail, "JPEG"),
            thumbnail_content_type="image/jpeg",
            width=pixels.width,
            height=pixels.height,
            perceptual_hash=dhash(thumbnail),
        )


def _upright(image: Image.Image) -> Image.Image:
    """Turn the pixels the way the EXIF orientation says. Unlike ``ImageOps.exif_transpose`` this
    only reads the tag: that one also rewrites the EXIF, which fails on corrupt metadata that is
    about to be dropped anyway. Unreadable metadata leaves the picture as decoded.
    (pillow-heif has already applied HEIF's own rotation and reports orientation 1.)"""
    try:
        method = _TRANSPOSE.get(image.getexif().get(ExifTags.Base.Orientation, 1))
    except _UNDECODABLE:
        return image
    return image.transpose(method) if method is not None else image


def _without_metadata(image: Image.Image) -> Image.Image:
    """Only the pixels: a fresh image carries no EXIF, GPS, XMP or ICC from the upload."""
    if image.mode in ("RGB", "RGBA", "L", "LA"):
        mode = image.mode
    elif "A" in image.getbands() or "transparency" in image.info:
        mode = "RGBA"
    else:  # palette, CMYK, 16-bit grey, …
        mode = "RGB"
    clean = Image.new(mode, image.size)
    clean.paste(image if image.mode == mode else image.convert(mode))
    return clean


def _flattened(image: Image.Image) -> Image.Image:
    """Transparent parts on white, as a page shows them (JPEG has no alpha; dropping it would
    reveal whatever colour the transparent pixels happen to hold)."""
    if image.mode in ("RGB", "L"):
        return image
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, "white")
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _encode(image: Image.Image, image_format: str) -> bytes:
    if image_format == "JPEG":
        image = _flattened(image)
    out = io.BytesIO()
    options = {"quality": 90} if image_format in ("JPEG", "WEBP") else {}
    image.save(out, format=image_format, **options)
    return out.getvalue()


def dhash(image: Image.Image) -> str:
    """64-bit difference hash: each bit says whether a pixel is brighter than its right neighbour
    on a 9×8 grey thumbnail. Survives re-encoding and resizing; 16 hex digits. Compare two with
    ``domain.photos.perceptual_distance``."""
    grey = image.convert("L").resize((9, 8), Image.Resampling.LANCZOS)
    pixels = grey.tobytes()  # one byte per pixel, row by row
    bits = 0
    for row in range(8):
        for column in range(8):
            left, right = pixels[row * 9 + column], pixels[row * 9 + column + 1]
            bits = (bits << 1) | (left > right)
    return f"{bits:016x}"
