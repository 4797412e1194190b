"""Kinds of sample members: how each is encoded, decoded, checked and declared to `datasets`.

A sample is a key plus members named `<field>.<ext>` (webdataset convention). The sample schema
maps each member name to one of the kinds registered here; loaders, `verify` and the dataset card
all look the kind up instead of guessing from the extension.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from dataengine.core.depth_png import decode_depth_png, decode_kitti_depth_png
from dataengine.core.png import DEFAULT_LEVEL as DEFAULT_PNG_LEVEL
from dataengine.core.png import encode_png

JPEG_QUALITY = 95
EXIF_ORIENTATION_TAG = 0x0112


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation of an opened image: 1 when its pixels are stored upright (or it says
    nothing valid), 2-8 when a reader that honours EXIF (browsers, `datasets`) rotates or flips it."""
    try:
        value = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
    except (OSError, ValueError, SyntaxError):  # a corrupt EXIF block: readers ignore it as well
        return 1
    return value if isinstance(value, int) and 2 <= value <= 8 else 1


def refuse_exif_orientation(image: Image.Image, what: str) -> None:
    """Raise ValueError when `image` is displayed rotated or flipped (EXIF orientation 2-8): its depth,
    masks or boxes could match either the stored or the displayed pixels, and readers disagree."""
    orientation = exif_orientation(image)
    if orientation != 1:
        raise ValueError(
            f"{what} has EXIF orientation {orientation} (shown rotated or flipped), so its stored pixels and what readers "
            "display differ; store it upright (e.g. `exiftran -ai`, or PIL ImageOps.exif_transpose) with its depth and boxes to match"
        )


@dataclass(frozen=True)
class FieldKind:
    """How one kind of member is read, checked and described."""

    name: str
    decode: Callable[[bytes], Any]
    hf_feature: Callable[[], Any]
    description: str


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FAST_PNG = ((8, 0), (8, 2))  # (bit depth, colour type) of 8-bit grey and RGB PNGs


def png_format(data: bytes) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's IHDR chunk; None when `data` is not a PNG."""
    if len(data) >= 26 and data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR":
        return data[24], data[25]
    return None


def _decode_image(data: bytes) -> np.ndarray:
    found = png_format(data)
    if found in FAST_PNG:  # the common case, lossless: OpenCV decodes it 2-3x faster than PIL, to the same pixels
        import cv2

        buffer = np.frombuffer(data, np.uint8)
        if found[1] == 0:
            array = cv2.imdecode(buffer, cv2.IMREAD_GRAYSCALE)
        elif hasattr(cv2, "IMREAD_COLOR_RGB"):  # OpenCV >= 4.11 decodes straight to RGB
            array = cv2.imdecode(buffer, cv2.IMREAD_COLOR_RGB)
        else:
            array = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
            array = None if array is None else cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
        if array is not None:
            return array
    with Image.open(io.BytesIO(data)) as image:
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        return np.asarray(image, dtype=np.uint8).copy()


def _decode_mask(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        if image.mode not in ("L", "P", "I;16", "I;16B", "I;16L", "I"):
            raise ValueError(f"mask PNG must be 8- or 16-bit greyscale, got mode {image.mode}")
        return np.asarray(image).copy()


def _decode_json(data: bytes) -> Any:
    return json.loads(data.decode("utf-8"))


def _decode_text(data: bytes) -> str:
    return data.decode("utf-8")


def _hf_image() -> Any:
    import datasets

    return datasets.Image()


def _hf_string() -> Any:
    import datasets

    return datasets.Value("string")


KINDS: dict[str, FieldKind] = {
    kind.name: kind
    for kind in (
        FieldKind("image", _decode_image, _hf_image, "8-bit RGB (or grey) image, PNG or JPEG -> uint8 HxWx3"),
        FieldKind("depth", decode_depth_png, _hf_image, "16-bit PNG in millimetres, 0 = no depth -> float32 metres"),
        FieldKind("depth_kitti", decode_kitti_depth_png, _hf_image, "16-bit PNG in 1/256 m (KITTI), 0 = no depth -> float32 metres"),
        FieldKind("mask", _decode_mask, _hf_image, "instance-id PNG, 0 = background -> uint8/uint16 HxW"),
        FieldKind("json", _decode_json, lambda: None, "UTF-8 JSON record -> dict"),
        FieldKind("text", _decode_text, _hf_string, "UTF-8 text -> str"),
    )
}


def field_kind(name: str) -> FieldKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown member kind '{name}'; known kinds: {', '.join(KINDS)}") from None


def encode_image(image: np.ndarray, ext: str = "png", png_level: int = DEFAULT_PNG_LEVEL) -> bytes:
    """Encode a uint8 HxWx3 (or HxW) array as PNG (at `png_level`, the catalog's `shards.png_level`)
    or JPEG with fixed settings (deterministic bytes)."""
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3)):
        raise ValueError(f"image must be uint8 HxW or HxWx3, got {array.dtype} {array.shape}")
    if ext == "png":
        return encode_png(array, png_level)
    if ext not in ("jpg", "jpeg"):
        raise ValueError(f"image extension must be 'png' or 'jpg', got '{ext}'")
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buffer.getvalue()


def encode_mask(mask: np.ndarray, png_level: int = DEFAULT_PNG_LEVEL) -> bytes:
    """Encode an instance-id mask as an 8-bit PNG (16-bit when ids exceed 255)."""
    array = np.asarray(mask)
    array = array.astype(np.uint8) if array.max(initial=0) < 256 else array.astype(np.uint16)
    return encode_png(array, png_level)


def encode_json(record: Any) -> bytes:
    """Canonical JSON: sorted keys, no spaces, so equal records give equal bytes."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def decode_member(kind: str, data: bytes) -> Any:
    return field_kind(kind).decode(data)
