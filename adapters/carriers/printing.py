"""Label artwork for the simulated carrier: a one-page 4×6 in PDF written object by object (text in
Helvetica, the QR code as filled squares), the same label as a PNG drawn with Pillow, and the QR
code alone as a PNG (segno). Deterministic: the same label gives the same bytes."""

from __future__ import annotations

import io

import segno
from PIL import Image, ImageDraw, ImageFont

PAGE_WIDTH, PAGE_HEIGHT = 288, 432  # points: 4 × 6 inches
MARGIN = 18
LINE_HEIGHT = 13


def qr_png(text: str) -> bytes:
    out = io.BytesIO()
    segno.make_qr(text, error="m").save(out, kind="png", scale=6, border=2)
    return out.getvalue()


def label_pdf(lines: list[str], qr_text: str) -> bytes:
    """A valid PDF 1.4: catalog, page tree, one page, its content stream and the built-in font,
    with the cross-reference table's offsets counted from the bytes written."""
    content = _pdf_content(lines, qr_text)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>" % (PAGE_WIDTH, PAGE_HEIGHT),
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def label_png(lines: list[str], qr_text: str) -> bytes:
    scale = 2  # 576 × 864 pixels: 144 dpi
    image = Image.new("L", (PAGE_WIDTH * scale, PAGE_HEIGHT * scale), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=11 * scale)
    for index, line in enumerate(lines):
        draw.text((MARGIN * scale, (MARGIN + index * LINE_HEIGHT) * scale), line, fill=0, font=font)
    qr = Image.open(io.BytesIO(qr_png(qr_text))).convert("L")
    side = 140 * scale
    qr = qr.resize((side, side), Image.Resampling.NEAREST)
    image.paste(qr, ((PAGE_WIDTH * scale - side) // 2, (PAGE_HEIGHT - MARGIN) * scale - side))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _pdf_content(lines: list[str], qr_text: str) -> bytes:
    text = [b"BT /F1 10 Tf %d TL %d %d Td" % (LINE_HEIGHT, MARGIN, PAGE_HEIGHT - MARGIN - 10)]
    text += [b"(" + _pdf_string(line) + b") Tj T*" for line in lines]
    text.append(b"ET")
    matrix = segno.make_qr(qr_text, error="m").matrix
    module = 140 / len(matrix)
    left, bottom = (PAGE_WIDTH - 140) / 2, MARGIN
    squares = [
        b"%.2f %.2f %.2f %.2f re" % (left + x * module, bottom + (len(matrix) - 1 - y) * module, module, module)
        for y, row in enumerate(matrix)
        for x, dark in enumerate(row)
        if dark
    ]
    return b"\n".join([*text, b"0 g", *squares, b"f"])


def _pdf_string(text: str) -> bytes:
    """Text as a PDF literal string in WinAnsi (cp1252); what it cannot show becomes ``?``."""
    raw = text.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)").replace(b"\r", b" ").replace(b"\n", b" ")
