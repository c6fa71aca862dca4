"""Image intake with real files: types by decoding, privacy by re-encoding, hostile files refused."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from adapters.images import PillowImageProcessor
from domain.photos import SAME_PHOTO_MAX_DISTANCE, perceptual_distance
from service.ports import ImageRejected
from tests.support.images import encode, heic, jpeg_with_gps, photo, png_bomb

processor = PillowImageProcessor()


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def test_gps_camera_and_orientation_are_gone_and_the_photo_is_upright() -> None:
    original = jpeg_with_gps(orientation=6)
    assert _open(original).getexif().get_ifd(0x8825), "the test file really has GPS"
    result = processor.process(original)
    stored = _open(result.image)
    assert result.detected_format == "jpeg" and result.content_type == "image/jpeg"
    assert not stored.getexif() and "exif" not in stored.info and "icc_profile" not in stored.info
    assert b"SERIAL-12345" not in result.image and b"Acme" not in result.image
    assert (result.width, result.height) == stored.size == (480, 640), "orientation 6 turned it upright"
    assert len(result.original_sha256) == 64 and result.original_sha256 != ""


@pytest.mark.parametrize(
    ("data", "detected", "content_type"),
    [
        (encode(photo(), "PNG"), "png", "image/png"),
        (encode(photo().convert("RGBA"), "PNG"), "png", "image/png"),
        (encode(photo(), "WEBP", quality=80), "webp", "image/webp"),
        (heic(), "heif", "image/jpeg"),
        (encode(photo().convert("P"), "PNG"), "png", "image/png"),
        (encode(photo().convert("L"), "JPEG"), "jpeg", "image/jpeg"),
    ],
    ids=["png", "png-alpha", "webp", "heic", "png-palette", "jpeg-grey"],
)
def test_accepted_formats_decode_and_reencode(data: bytes, detected: str, content_type: str) -> None:
    result = processor.process(data)
    assert (result.detected_format, result.content_type) == (detected, content_type)
    stored = _open(result.image)
    assert stored.size == (result.width, result.height)
    thumbnail = _open(result.thumbnail)
    assert thumbnail.format == "JPEG" and max(thumbnail.size) == 320


def test_the_type_comes_from_the_bytes_not_the_name() -> None:
    png_named_jpg = encode(photo(), "PNG")  # whatever the client called it
    assert processor.process(png_named_jpg).detected_format == "png"


@pytest.mark.parametrize(
    "data",
    [b"this is a text file, not a photo\n" * 20, encode(photo(), "GIF"), encode(photo(), "BMP"), b"%PDF-1.4\n%...", b""],
    ids=["text", "gif", "bmp", "pdf", "empty"],
)
def test_anything_else_is_unsupported(data: bytes) -> None:
    with pytest.raises(ImageRejected) as refused:
        processor.process(data)
    assert refused.value.code == "unsupported_media_type"


def test_a_decompression_bomb_is_refused() -> None:
    bomb = png_bomb()
    assert len(bomb) < 2000
    with pytest.raises(ImageRejected) as refused:
        processor.process(bomb)
    assert refused.value.code == "validation_error"


def test_one_pixel_by_huge_is_refused() -> None:
    with pytest.raises(ImageRejected) as refused:
        processor.process(png_bomb(width=1, height=2_000_000_000))
    assert refused.value.code == "validation_error"


def test_a_truncated_file_is_refused() -> None:
    whole = encode(photo(), "JPEG")
    with pytest.raises(ImageRejected) as refused:
        processor.process(whole[: len(whole) // 2])
    assert refused.value.code == "validation_error"
    png = encode(photo(), "PNG")
    with pytest.raises(ImageRejected):
        processor.process(png[: len(png) // 3])


def test_the_same_picture_reencoded_hashes_alike_and_another_does_not() -> None:
    base = processor.process(encode(photo(seed=1), "JPEG", quality=95)).perceptual_hash
    smaller = processor.process(encode(photo(seed=1).resize((320, 240)), "JPEG", quality=60)).perceptual_hash
    as_png = processor.process(encode(photo(seed=1), "PNG")).perceptual_hash
    other = processor.process(encode(photo(seed=5), "JPEG")).perceptual_hash
    assert perceptual_distance(base, smaller) <= SAME_PHOTO_MAX_DISTANCE
    assert perceptual_distance(base, as_png) <= SAME_PHOTO_MAX_DISTANCE
    assert perceptual_distance(base, other) > SAME_PHOTO_MAX_DISTANCE
    assert len(base) == 16


def test_a_multi_picture_jpeg_from_a_phone_is_a_jpeg() -> None:
    out = io.BytesIO()
    photo(seed=12).save(out, format="MPO", save_all=True, append_images=[photo(seed=13)])
    result = processor.process(out.getvalue())
    assert result.detected_format == "jpeg" and result.content_type == "image/jpeg"


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_corrupt_exif_keeps_the_photo() -> None:
    image = photo()
    garbled = b"Exif\x00\x00MM\x00*\x7f\xff\xff\xf0" + b"\x00" * 8  # its first directory is far past the end
    data = encode(image, "JPEG", exif=garbled)
    result = processor.process(data)
    assert (result.width, result.height) == image.size and not Image.open(io.BytesIO(result.image)).getexif()
