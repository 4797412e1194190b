"""Digital corruptions: contrast, elastic_transform, pixelate, jpeg_compression, color_quant, saturate."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image, ImageOps

from corruptions.filters import gaussian
from corruptions.output import unit_to_uint8
from corruptions.pixelation import box_down_nearest_up
from corruptions.registry import DATA_PROCESSING, SENSOR_MOVEMENT, WEATHER_LIGHTING, register
from corruptions.scratch import scratch

CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)
ELASTIC_ALPHA = (250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12)
PIXELATE = (0.6, 0.5, 0.4, 0.3, 0.25)
JPEG_QUALITY = (25, 18, 15, 10, 7)
COLOR_QUANT_BITS = (5, 4, 3, 2, 1)
SATURATE = ((0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2))


@register("contrast", "digital", CONTRAST, WEATHER_LIGHTING, stochastic=False)
def contrast(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Each channel's output is a function of its value: the float arithmetic runs on a 256-entry table
    per channel (the same operations, so the same result) and OpenCV applies it."""
    factor = np.float32(CONTRAST[severity - 1])
    # The channel sums of uint8 pixels are exact in float64 either way; OpenCV sums them 100x faster.
    means = (np.array(cv2.sumElems(image)[: image.shape[2]]) / (image.shape[0] * image.shape[1]) / 255).astype(np.float32)
    x = np.repeat(np.arange(256, dtype=np.float32)[:, None], image.shape[2], axis=1)
    x *= np.float32(1 / 255)
    x -= means
    x *= factor
    x += means
    np.clip(x, 0, 1, out=x)
    x *= 255
    table = np.clip(x, 0, 255).astype(np.uint8).reshape(256, 1, image.shape[2])
    return cv2.LUT(image, table)


def elastic_field(shape: tuple[int, int], severity: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The random displacement (dx, dy) in pixels: smoothed uniform noise (reflect, truncate 3) x alpha."""
    h, w = shape
    sigma = (0.01 * h, 0.01 * w)
    alpha = ELASTIC_ALPHA[severity - 1]
    reach = 0.005 * h
    fields = []
    for _ in range(2):
        noise = rng.uniform(-reach, reach, size=shape).astype(np.float32)
        fields.append(gaussian(noise, sigma, truncate=3.0, border=cv2.BORDER_REFLECT) * np.float32(alpha))
    return fields[0], fields[1]


def apply_displacement(image: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Sample image at (x + dx, y + dy), bilinear, reflecting at the borders (float32 in [0, 1] out)."""
    h, w = image.shape[:2]
    cols, rows = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    x = image.astype(np.float32) * np.float32(1 / 255)
    return cv2.remap(x, cols + dx, rows + dy, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


@register("elastic_transform", "digital", ELASTIC_ALPHA, SENSOR_MOVEMENT)
def elastic_transform(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    dx, dy = elastic_field(image.shape[:2], severity, rng)
    return unit_to_uint8(apply_displacement(image, dx, dy))


@register("pixelate", "digital", PIXELATE, DATA_PROCESSING, stochastic=False)
def pixelate(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """PIL's BOX reduction by the factor, then NEAREST back to size (`pixelation`: the same pixels, faster)."""
    h, w = image.shape[:2]
    factor = PIXELATE[severity - 1]
    return box_down_nearest_up(image, (int(w * factor), int(h * factor)))


@register("jpeg_compression", "digital", JPEG_QUALITY, DATA_PROCESSING, stochastic=False)
def jpeg_compression(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Encode and decode at a low JPEG quality (libjpeg defaults: 4:2:0, as PIL's `save` in the reference).

    OpenCV's libjpeg-turbo writes the same bytes as PIL's here and decodes them to the same pixels
    (tested); the two codec calls are nearly all of the time, so this is as fast as JPEG allows.
    """
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR, dst=scratch("jpeg.bgr", image.shape, np.uint8))
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY[severity - 1]])
    if not ok:
        raise RuntimeError("OpenCV could not JPEG-encode the image")
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR_RGB)


@register("color_quant", "digital", COLOR_QUANT_BITS, SENSOR_MOVEMENT, stochastic=False)
def color_quant(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """RoboDepth: PIL posterize keeping 6 - severity bits per channel."""
    return np.asarray(ImageOps.posterize(Image.fromarray(image), COLOR_QUANT_BITS[severity - 1]))


@register("saturate", "digital", SATURATE, stochastic=False)
def saturate(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """S' = clip(S * a + b) in HSV, hue and value kept: channels move along (V - channel) by S'/S."""
    scale, shift = SATURATE[severity - 1]
    x = image / 255.0
    value = x.max(axis=2, keepdims=True)
    delta = value - x.min(axis=2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        sat = np.where(value > 0, delta / value, 0.0)
        new_sat = np.clip(sat * scale + shift, 0, 1)
        out = np.where(delta > 0, value - (value - x) * (new_sat / sat), 0.0)
    # A grey pixel has hue 0 (red): a positive shift gives it (V, V(1 - S'), V(1 - S')).
    grey = np.concatenate([value, value * (1 - new_sat), value * (1 - new_sat)], axis=2)
    out = np.where(delta > 0, out, grey)
    return np.clip(out, 0, 1) * 255
