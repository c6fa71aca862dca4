"""Photo evidence values: the perceptual hash distance that says two pictures are the same."""

from __future__ import annotations

# Two 64-bit dHashes this close are the same picture (re-encoded, resized or lightly edited).
SAME_PHOTO_MAX_DISTANCE = 6


def perceptual_distance(a: str, b: str) -> int:
    """Bits that differ between two 16-hex-digit perceptual hashes."""
    return (int(a, 16) ^ int(b, 16)).bit_count()
