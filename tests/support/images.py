"""Real image files made in the tests: photos with EXIF and GPS, every accepted format, and the
hostile ones (bombs, truncated files, text pretending to be a JPEG)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image
from pillow_heif import register_heif_opener

register_heif_opener()


def photo(width: int = 640, height: int = 480, seed: int = 1) -> Image.Image:
    """A picture with structure (so perceptual hashes mean something): gradients and blocks."""
    image = Image.new("RGB", (width, height))
    pixels = image.load()
    for x in range(width):
        for y in range(height):
            pixels[x, y] = ((x * seed * 7) % 256, (y * 3 + seed * 40) % 256, ((x // 40 + y // 40) * 60 * seed) % 256)
    return image


def encode(image: Image.Image, image_format: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=image_format, **options)
    return out.getvalue()


def jpeg_with_gps(orientation: int = 6) -> bytes:
    """A JPEG whose EXIF says where it was taken, which camera took it, and that it is rotated."""
    image = photo(640, 480)
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    exif[0x010F] = "Acme"  # Make
    exif[0xA431] = "SERIAL-12345"  # BodySerialNumber
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (52.0, 31.0, 12.0)  # latitude
    gps[3], gps[4] = "E", (13.0, 24.0, 36.0)  # longitude
    return encode(image, "JPEG", exif=exif.tobytes(), quality=92)


def heic() -> bytes:
    return encode(photo(320, 240, seed=3), "HEIF", quality=80)


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny, valid-looking PNG that declares billions of pixels (its data is a few bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    rows = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
