"""Image operations several corruptions share, built on OpenCV and matching the reference's semantics.

- `gaussian`: scikit-image's `filters.gaussian` (mode 'nearest', truncate 4) via cv2.GaussianBlur.
- `clipped_zoom`: the reference's centre crop + `scipy.ndimage.zoom(order=1)` + crop, as one warp.
- `motion_blur`: the reference's sum of edge-replicated shifts, as one 2-D correlation kernel.
- `nonzero_core`: a kernel without its all-zero border (the same correlation, cheaper).
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def gaussian(
    image: np.ndarray, sigma: float | tuple[float, float], truncate: float = 4.0, border: int = cv2.BORDER_REPLICATE
) -> np.ndarray:
    """Gaussian smoothing over the first two axes; `sigma` is one value or (sigma_rows, sigma_cols)."""
    sigma_y, sigma_x = (sigma, sigma) if np.isscalar(sigma) else sigma
    size_x = 2 * int(truncate * sigma_x + 0.5) + 1
    size_y = 2 * int(truncate * sigma_y + 0.5) + 1
    return cv2.GaussianBlur(image, (size_x, size_y), sigmaX=sigma_x, sigmaY=sigma_y, borderType=border)


def clipped_zoom(image: np.ndarray, factor: float) -> np.ndarray:
    """Zoom into the centre by `factor`, keeping the input's size (float32 in, float32 out).

    The reference crops ceil(n / factor) centred pixels, zooms them with scipy's order-1 spline
    (which maps output i to input i * (n_in - 1) / (n_out - 1), n_out = round(n_in * factor)), and
    keeps the first n rows and columns: that is one affine map, sampled bilinearly here.
    """
    h, w = image.shape[:2]
    scales, offsets = [], []
    for n in (h, w):
        crop = int(math.ceil(n / float(factor)))
        top = (n - crop) // 2
        zoomed = int(round(crop * factor))
        scales.append((crop - 1) / (zoomed - 1) if zoomed > 1 else 0.0)
        offsets.append(top)
    matrix = np.array([[scales[1], 0.0, offsets[1]], [0.0, scales[0], offsets[0]]])
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def motion_kernel(radius: int, sigma: float, angle_deg: float, shape: tuple[int, int]) -> np.ndarray:
    """The correlation kernel equal to the reference's weighted sum of shifted copies."""
    width = 2 * radius + 1
    taps = np.exp(-(np.arange(width) ** 2) / (2 * sigma**2)) / (math.sqrt(2 * math.pi) * sigma)
    taps /= taps.sum()
    point = (width * math.sin(math.radians(angle_deg)), width * math.cos(math.radians(angle_deg)))
    hypot = math.hypot(*point)
    kernel = np.zeros((2 * width + 1, 2 * width + 1), dtype=np.float32)
    for i in range(width):
        dy = -math.ceil((i * point[0]) / hypot - 0.5)
        dx = -math.ceil((i * point[1]) / hypot - 0.5)
        if abs(dy) >= shape[0] or abs(dx) >= shape[1]:
            break  # the reference stops once the motion leaves the image
        # shifted copy: out[y, x] += k * in[y - dy, x - dx]  ->  correlation weight at (-dy, -dx)
        kernel[width - dy, width - dx] += taps[i]
    return kernel


def motion_blur(image: np.ndarray, radius: int, sigma: float, angle_deg: float) -> np.ndarray:
    """Blur along a line at `angle_deg`, replicating edges (float32 out)."""
    kernel = nonzero_core(motion_kernel(radius, sigma, angle_deg, image.shape[:2]))
    return cv2.filter2D(image.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REPLICATE)


def nonzero_core(kernel: np.ndarray) -> np.ndarray:
    """The kernel without its all-zero border rows and columns, kept centred (same correlation): the
    small disks of defocus severities 1-2 sit in a 17x17 frame (OpenCV filters a 9x9 kernel 4x
    faster), a motion line at -10 degrees in a 63x63 one (11x61 is enough)."""
    rows = np.flatnonzero(kernel.any(axis=1))
    cols = np.flatnonzero(kernel.any(axis=0))
    centre_r, centre_c = kernel.shape[0] // 2, kernel.shape[1] // 2
    reach_r = max(centre_r - rows[0], rows[-1] - centre_r)
    reach_c = max(centre_c - cols[0], cols[-1] - centre_c)
    return kernel[centre_r - reach_r : centre_r + reach_r + 1, centre_c - reach_c : centre_c + reach_c + 1]
