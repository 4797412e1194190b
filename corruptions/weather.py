"""Weather and lighting: brightness, dark (RoboDepth), fog, frost, snow, and spatter (validation)."""

from __future__ import annotations

import math
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

import cv2
import numpy as np
from numba import njit

from corruptions.filters import clipped_zoom, gaussian, motion_blur
from corruptions.noise import GAUSSIAN_SIGMA, SHOT_SCALE, add_gaussian, poisson, unit
from corruptions.output import to_uint8, unit_byte, unit_to_uint8
from corruptions.registry import WEATHER_LIGHTING, register

BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)
DARK = (0.60, 0.50, 0.40, 0.30, 0.20)
FOG = ((1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))
FROST = ((1.0, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))
SNOW = (
    (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
    (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
    (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
    (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
    (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
)
SPATTER = (
    (0.65, 0.3, 4, 0.69, 0.6, "water"),
    (0.65, 0.3, 3, 0.68, 0.6, "water"),
    (0.65, 0.3, 2, 0.68, 0.5, "water"),
    (0.65, 0.3, 1, 0.65, 1.5, "mud"),
    (0.67, 0.4, 1, 0.65, 1.5, "mud"),
)
FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")


@register("brightness", "weather", BRIGHTNESS, WEATHER_LIGHTING, stochastic=False)
def brightness(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Add c to V in HSV. For fixed hue and saturation RGB is proportional to V, so scale by V'/V."""
    out = np.empty(image.shape, dtype=np.uint8)
    _lift_value(np.ascontiguousarray(image).reshape(-1, 3), np.float32(BRIGHTNESS[severity - 1]), out.reshape(-1, 3))
    return out


@njit(cache=True, nogil=True)
def _lift_value(pixels: np.ndarray, lift: np.float32, out: np.ndarray) -> None:
    """Per pixel, in float32 as NumPy would do it: x = rgb / 255, V' = min(max(x) + lift, 1),
    x * (V' / max(x)) (black, having no hue, turns grey V'), then clip, x 255 and truncate."""
    inverse, one = np.float32(1 / 255), np.float32(1)
    for i in range(pixels.shape[0]):
        r = np.float32(pixels[i, 0]) * inverse
        g = np.float32(pixels[i, 1]) * inverse
        b = np.float32(pixels[i, 2]) * inverse
        value = max(r, g, b)
        boosted = min(value + lift, one)
        if value > 0:
            factor = boosted / value
            r, g, b = r * factor, g * factor, b * factor
        else:
            r = g = b = boosted
        out[i, 0], out[i, 1], out[i, 2] = unit_byte(r), unit_byte(g), unit_byte(b)


@register("dark", "weather", DARK, WEATHER_LIGHTING)
def dark(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """RoboDepth low light: a gamma-2 stretch to max c, then Poisson-Gaussian sensor noise.

    A constant image has no range to stretch and becomes black before the noise.
    """
    values = np.arange(256, dtype=np.float64) / 255  # the stretch is a function of the value: tabulate it
    low, high = image.min() / 255, image.max() / 255
    stretched = ((values - low) / (high - low)) ** 2 if high > low else np.zeros_like(values)
    scale = 10 * SHOT_SCALE[severity - 1]
    rates = (stretched * DARK[severity - 1]).astype(np.float32) * np.float32(scale)
    y = poisson(image, scale, rng, rates=rates)
    return add_gaussian(y, 0.1 * GAUSSIAN_SIGMA[severity - 1], rng)


def _shifted_sum(a: np.ndarray, b: np.ndarray, axis: int, shift: int) -> np.ndarray:
    """a + np.roll(b, shift, axis) for shift -1 or 1, without the copy np.roll makes."""
    out = a.copy()
    if axis == 1:
        out, a, b = out.T, a.T, b.T
    if shift == -1:
        out[:-1] += b[1:]
        out[-1] += b[0]
    else:
        out[1:] += b[:-1]
        out[0] += b[-1]
    return out.T if axis == 1 else out


def plasma_fractal(mapsize: int, wibbledecay: float, rng: np.random.Generator) -> np.ndarray:
    """Diamond-square height map in [0, 1] on a mapsize x mapsize grid (mapsize a power of two).

    The reference's algorithm (toroidal neighbours, noise wibble * U(-wibble, wibble) per new point,
    min-max normalised over the whole map) in float32: the finest noise is still 40 float32 steps
    at the map's scale, five orders of magnitude below one grey level of the output.
    """
    grid = np.zeros((mapsize, mapsize), dtype=np.float32)
    step = mapsize
    wibble = 100.0

    def wibbled_mean(total: np.ndarray) -> np.ndarray:
        noise = rng.random(total.shape, dtype=np.float32)
        noise *= np.float32(2 * wibble * wibble)
        noise -= np.float32(wibble * wibble)
        total *= np.float32(0.25)
        total += noise
        return total

    while step >= 2:
        half = step // 2
        corners = grid[0:mapsize:step, 0:mapsize:step]
        square = _shifted_sum(corners, corners, 0, -1)
        square = _shifted_sum(square, square, 1, -1)
        grid[half:mapsize:step, half:mapsize:step] = wibbled_mean(square)
        centres = grid[half:mapsize:step, half:mapsize:step]
        left = _shifted_sum(centres, centres, 0, 1)
        left += _shifted_sum(corners, corners, 1, -1)
        grid[0:mapsize:step, half:mapsize:step] = wibbled_mean(left)
        top = _shifted_sum(centres, centres, 1, 1)
        top += _shifted_sum(corners, corners, 0, -1)
        grid[half:mapsize:step, 0:mapsize:step] = wibbled_mean(top)
        step //= 2
        wibble /= wibbledecay
    low, high = cv2.minMaxLoc(grid)[:2]
    grid -= np.float32(low)
    grid *= np.float32(1 / (high - low))
    return grid


@register("fog", "weather", FOG, WEATHER_LIGHTING)
def fog(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    strength, decay = FOG[severity - 1]
    h, w = image.shape[:2]
    mapsize = 1 << (max(h, w, 3) - 1).bit_length()
    x = unit(image)
    peak = x.max()
    x += np.float32(strength) * plasma_fractal(mapsize, decay, rng)[:h, :w, None]
    return unit_to_uint8(x * peak / (peak + strength))


def frost_texture_dir() -> Path:
    """The frost photographs shipped by `imagecorruptions`, located without importing it."""
    spec = find_spec("imagecorruptions")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("frost needs the textures shipped by the imagecorruptions package: pip install imagecorruptions==1.1.2")
    return Path(next(iter(spec.submodule_search_locations))) / "frost"


@lru_cache(maxsize=6)
def frost_texture(index: int) -> np.ndarray:
    path = frost_texture_dir() / FROST_FILES[index]
    texture = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if texture is None:
        raise RuntimeError(f"cannot read frost texture {path}")
    texture.flags.writeable = False
    return texture


@lru_cache(maxsize=32)
def fitted_frost(index: int, height: int, width: int) -> np.ndarray:
    """A texture scaled (bicubic) to cover the image with a 10% margin, as the reference does."""
    texture = frost_texture(index)
    th, tw = texture.shape[:2]
    scale = max(height / th, width / tw, 1.0) * 1.1
    fitted = cv2.resize(texture, (int(math.ceil(tw * scale)), int(math.ceil(th * scale))), interpolation=cv2.INTER_CUBIC)
    fitted.flags.writeable = False
    return fitted


@register("frost", "weather", FROST, WEATHER_LIGHTING)
def frost(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Blend a random crop of a frost photograph (the reference only ever draws textures 1-5)."""
    image_weight, frost_weight = FROST[severity - 1]
    h, w = image.shape[:2]
    texture = fitted_frost(int(rng.integers(5)), h, w)
    top = int(rng.integers(0, max(texture.shape[0] - h, 1)))
    left = int(rng.integers(0, max(texture.shape[1] - w, 1)))
    crop = texture[top : top + h, left : left + w, ::-1].astype(np.float32)  # BGR -> RGB
    return to_uint8(np.float32(image_weight) * image + np.float32(frost_weight) * crop)


@register("snow", "weather", SNOW, WEATHER_LIGHTING)
def snow(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    mean, std, zoom, threshold, radius, sigma, blend = SNOW[severity - 1]
    x = unit(image)
    flakes = rng.normal(loc=mean, scale=std, size=x.shape[:2]).astype(np.float32)
    flakes = clipped_zoom(flakes, zoom)
    flakes[flakes < threshold] = 0
    flakes = motion_blur(np.clip(flakes, 0, 1), radius, sigma, rng.uniform(-135, -45))
    flakes = (np.round(flakes * 255).astype(np.uint8).astype(np.float32) / 255)[..., None]
    grey = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[..., None]
    x = blend * x + (1 - blend) * np.maximum(x, grey * 1.5 + 0.5)
    return unit_to_uint8(x + flakes + np.rot90(flakes, k=2))


@register("spatter", "weather", SPATTER)
def spatter(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    loc, scale, sigma, threshold, intensity, mode = SPATTER[severity - 1]
    x = unit(image)
    liquid = gaussian(rng.normal(loc=loc, scale=scale, size=x.shape[:2]).astype(np.float32), sigma)
    liquid[liquid < threshold] = 0
    if mode == "water":
        liquid8 = (liquid * 255).astype(np.uint8)
        dist = cv2.distanceTransform(255 - cv2.Canny(liquid8, 50, 150), cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = cv2.equalizeHist(cv2.blur(dist, (3, 3)).astype(np.uint8))
        dist = cv2.filter2D(dist, cv2.CV_8U, np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]))
        dist = cv2.blur(dist, (3, 3)).astype(np.float32)
        drops = liquid8 * dist
        drops = drops / drops.max() * intensity if drops.max() > 0 else drops
        tint = np.array([175, 238, 238], dtype=np.float32) / 255  # pale turquoise water
        return np.clip(x + drops[..., None] * tint, 0, 1) * 255
    drops = gaussian((liquid > threshold).astype(np.float32), intensity)
    drops[drops < 0.8] = 0
    mud = np.array([63, 42, 20], dtype=np.float32) / 255 * drops[..., None]
    return np.clip(x * (1 - drops[..., None]) + mud, 0, 1) * 255
