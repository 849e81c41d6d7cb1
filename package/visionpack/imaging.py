"""Request image handling: base64 -> bytes -> header sniff -> decoded RGB array.

Limits come from the EasyDL contract (seed 004): base64 at most 4 MB, shortest side at least
15 px, longest at most 4096 px, jpg/png/bmp only. Dimensions are read from the file header
*before* decoding, so a decompression bomb (a few KB claiming 60000x60000) is refused without
allocating its pixels.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass

import numpy as np

from .errors import Base64DecodeFailed, ImageDecodeFailed, ImageSizeInvalid, InvalidArgument


@dataclass(frozen=True)
class ImageLimits:
    max_b64_bytes: int = 4 * 1024 * 1024
    min_side: int = 15
    max_side: int = 4096


@dataclass(frozen=True)
class ImageInfo:
    fmt: str
    width: int
    height: int


# "scheme://": http, https, ftp, file, s3, ... Base64 never contains ':'.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,31}://")


def b64_to_bytes(value: object, limits: ImageLimits, what: str = "image") -> bytes:
    """Decode the ``image`` field; size is checked on the encoded text, as EasyDL does."""
    if not isinstance(value, str):
        raise InvalidArgument(f"'{what}' must be a base64 string")
    if len(value) > limits.max_b64_bytes:
        raise ImageSizeInvalid(f"base64 image is {len(value)} bytes, limit {limits.max_b64_bytes}")
    if _URL.match(value):
        # PaddleX would fetch it; an offline deployment must not fetch URLs for a client (nor
        # become a proxy into the network it sits in). A schema problem: 422 / 336001 (README).
        raise InvalidArgument(f"'{what}': image URLs are not accepted; send the file as base64")
    if value.startswith("data:"):
        raise Base64DecodeFailed("strip the 'data:image/...;base64,' header before sending")
    try:
        # Line breaks are common from command-line encoders (base64 wraps at 76); drop them.
        data = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        # binascii names the problem, never the input ("Incorrect padding", "non-ASCII ...").
        raise Base64DecodeFailed(f"invalid base64: {str(exc)[:80]}") from None
    if not data:
        raise Base64DecodeFailed("image is empty")
    return data


def sniff(data: bytes) -> ImageInfo:
    """Format and size from the header alone; raises ImageDecodeFailed for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageDecodeFailed("truncated PNG header")
        w, h = struct.unpack(">II", data[16:24])
        return ImageInfo("png", w, h)
    if data[:2] == b"\xff\xd8":
        return _sniff_jpeg(data)
    if data[:2] == b"BM":
        return _sniff_bmp(data)
    raise ImageDecodeFailed("not a jpg, png or bmp file")


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _sniff_jpeg(data: bytes) -> ImageInfo:
    i, n = 2, len(data)
    while i < n:
        if data[i] != 0xFF:
            raise ImageDecodeFailed("corrupt JPEG marker stream")
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            break
        marker = data[i]
        i += 1
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue
        if marker == 0xD9 or i + 2 > n:
            break
        (length,) = struct.unpack(">H", data[i : i + 2])
        if length < 2:
            raise ImageDecodeFailed("corrupt JPEG segment length")
        if marker in _SOF:
            if i + 7 > n:
                break
            h, w = struct.unpack(">HH", data[i + 3 : i + 7])
            return ImageInfo("jpg", w, h)
        i += length
    raise ImageDecodeFailed("JPEG without a frame header")


def _sniff_bmp(data: bytes) -> ImageInfo:
    if len(data) < 26:
        raise ImageDecodeFailed("truncated BMP header")
    (dib,) = struct.unpack("<I", data[14:18])
    if dib == 12:
        w, h = struct.unpack("<HH", data[18:22])
    elif dib >= 40:
        w, h = struct.unpack("<ii", data[18:26])
    else:
        raise ImageDecodeFailed("unsupported BMP header")
    return ImageInfo("bmp", abs(w), abs(h))


def check_size(info: ImageInfo, limits: ImageLimits) -> None:
    short, long_ = sorted((info.width, info.height))
    if short < limits.min_side or long_ > limits.max_side:
        raise ImageSizeInvalid(
            f"image is {info.width}x{info.height}; sides must be {limits.min_side}..{limits.max_side} px"
        )


def decode(data: bytes, limits: ImageLimits) -> np.ndarray:
    """Bytes -> HxWx3 uint8 RGB (PaddleX reads RGB). Size-checked before any pixel is decoded."""
    import cv2

    info = sniff(data)
    check_size(info, limits)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ImageDecodeFailed(f"cannot decode {info.fmt} data")
    # EXIF rotation may swap sides; the limits hold either way since they are symmetric.
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def decode_b64(value: object, limits: ImageLimits, what: str = "image") -> np.ndarray:
    return decode(b64_to_bytes(value, limits, what), limits)


def encode_jpeg_b64(rgb: np.ndarray, quality: int = 90) -> str:
    """For visualisation images in responses (PaddleX returns base64 JPEG)."""
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ImageDecodeFailed("cannot encode visualisation")
    return base64.b64encode(buf.tobytes()).decode("ascii")
