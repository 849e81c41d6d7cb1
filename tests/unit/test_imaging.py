"""Image limits and header sniffing: every refusal happens before pixels are decoded."""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np
import pytest

from tests.unit.fakes import png_bytes
from visionpack import imaging
from visionpack.errors import Base64DecodeFailed, ImageDecodeFailed, ImageSizeInvalid, InvalidArgument

LIMITS = imaging.ImageLimits()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png_header_only(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def test_decodes_png_to_rgb():
    import cv2

    bgr = np.zeros((20, 30, 3), np.uint8)
    bgr[..., 2] = 255  # red in BGR
    ok, buf = cv2.imencode(".png", bgr)
    img = imaging.decode_b64(b64(buf.tobytes()), LIMITS)
    assert img.shape == (20, 30, 3)
    assert img[0, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp"])
def test_sniffs_each_supported_format(ext):
    import cv2

    ok, buf = cv2.imencode(ext, np.zeros((33, 47, 3), np.uint8))
    info = imaging.sniff(buf.tobytes())
    assert (info.width, info.height) == (47, 33)


def test_rejects_non_string_image():
    with pytest.raises(InvalidArgument):
        imaging.b64_to_bytes(123, LIMITS)


def test_rejects_data_url_header():
    with pytest.raises(Base64DecodeFailed):
        imaging.b64_to_bytes("data:image/png;base64," + b64(png_bytes(20, 20)), LIMITS)


def test_rejects_bad_base64():
    with pytest.raises(Base64DecodeFailed):
        imaging.b64_to_bytes("not*base64!", LIMITS)


def test_accepts_wrapped_base64_lines():
    data = png_bytes(20, 20)
    text = b64(data)
    wrapped = "\n".join(text[i : i + 76] for i in range(0, len(text), 76))
    assert imaging.b64_to_bytes(wrapped, LIMITS) == data


def test_rejects_oversized_base64_before_decoding():
    with pytest.raises(ImageSizeInvalid):
        imaging.b64_to_bytes("A" * (LIMITS.max_b64_bytes + 4), LIMITS)


def test_rejects_unknown_format():
    with pytest.raises(ImageDecodeFailed):
        imaging.decode(b"GIF89a" + b"\0" * 100, LIMITS)


def test_rejects_truncated_file_of_known_format():
    data = png_bytes(40, 40)
    with pytest.raises(ImageDecodeFailed):
        imaging.decode(data[: len(data) // 2], LIMITS)


@pytest.mark.parametrize("w,h", [(14, 100), (100, 14), (4097, 100), (100, 4097)])
def test_rejects_sides_out_of_range(w, h):
    with pytest.raises(ImageSizeInvalid):
        imaging.decode(png_header_only(w, h), LIMITS)


def test_decompression_bomb_is_refused_from_its_header():
    # 60000 x 60000 RGB would be ~10 GB decoded; the request is a few dozen bytes.
    bomb = png_header_only(60000, 60000) + b"\0" * 64
    with pytest.raises(ImageSizeInvalid):
        imaging.decode(bomb, LIMITS)


def test_jpeg_with_huge_frame_header_is_refused():
    import cv2

    ok, buf = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    data = bytearray(buf.tobytes())
    i = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, i + 5, 50000, 50000)
    with pytest.raises(ImageSizeInvalid):
        imaging.decode(bytes(data), LIMITS)


def test_empty_image_is_refused():
    with pytest.raises(Base64DecodeFailed):
        imaging.b64_to_bytes("", LIMITS)
