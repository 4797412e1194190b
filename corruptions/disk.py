"""defocus_blur's kernel, a disk smoothed by a small Gaussian, applied by running sums: O(radius) per pixel.

The reference correlates the image (reflect-101 borders) with `K = GaussianBlur(D / N)`, where D is
the 0/1 disk on a (2L+1)^2 grid and the blur itself uses reflect-101 at the grid's edge. Along one
axis that blur is a matrix A (a Gaussian band, altered in the last g rows by the reflection and
the crop), so K = A D A^T / N, and for a column u of A written as the plain Gaussian g_u plus a
sparse edge term d_u (zero unless u is within g of the edge):

    I * K = [ G * (D * I)  +  sum_u,dy d_u[dy] Gx * RowRun_w(u)(I)(y+dy)  +  the same in columns ] / N

D * I is a sum of 2r+1 row runs, each two lookups in a row prefix sum, in exact integers; the edge
terms are runs too. So the cost grows with the radius, not its square, and the result is the
reference kernel's up to float rounding (the terms are derived from OpenCV's own blur, and tests
rebuild K from them).
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import cv2
import numpy as np
from numba import njit

from corruptions.scratch import scratch


def disk(radius: int, alias_blur: float) -> np.ndarray:
    """The reference's anti-aliased disk kernel (17x17 at least, smoothed by a 3x3 or 5x5 Gaussian)."""
    half, ksize = disk_grid(radius)
    grid = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(grid, grid)
    aliased = np.array(xx**2 + yy**2 <= radius**2, dtype=np.float32)
    aliased /= aliased.sum()
    return cv2.GaussianBlur(aliased, ksize=(ksize, ksize), sigmaX=alias_blur)


def disk_grid(radius: int) -> tuple[int, int]:
    """(half size L of the kernel grid, Gaussian size) as the reference chooses them."""
    return (8, 3) if radius <= 8 else (radius, 5)


class DiskPlan(NamedTuple):
    """Everything `disk_filter` needs for one (radius, alias_blur)."""

    widths: np.ndarray  # half-width of the disk's row run at row offsets -r..r
    gauss: np.ndarray  # the 1-D Gaussian (2g+1 taps) of OpenCV's blur
    edge_terms: np.ndarray  # (offset, run half-width, weight) rows: the reflection's and crop's terms
    edge_weights: np.ndarray  # their distinct weights (the Gaussian's taps, signed)
    edge_runs: np.ndarray  # (offset, run half-width, index into edge_weights): runs of one weight
    count: int  # N, the number of pixels in the disk
    pad: int  # L + g: how far the filter reaches
    scale: float  # 1 / N as the reference has it, in float32: on a tie it decides how the cast truncates


def blur_matrix(half: int, ksize: int, sigma: float) -> np.ndarray:
    """A[out, in]: OpenCV's 1-D Gaussian blur (reflect-101) of a length-(2L+1) signal, column by column."""
    size = 2 * half + 1
    columns = []
    for u in range(size):
        impulse = np.zeros((1, size), dtype=np.float64)
        impulse[0, u] = 1.0
        columns.append(cv2.GaussianBlur(impulse, ksize=(ksize, 1), sigmaX=sigma, sigmaY=sigma)[0])
    return np.stack(columns, axis=1)


@lru_cache(maxsize=16)
def disk_plan(radius: int, alias_blur: float) -> DiskPlan:
    """The disk's row runs, OpenCV's Gaussian, and the edge terms of A's reflection and crop."""
    half, ksize = disk_grid(radius)
    g = ksize // 2
    offsets = np.arange(-radius, radius + 1)
    widths = np.floor(np.sqrt(radius**2 - offsets**2) + 1e-9).astype(np.int64)
    a = blur_matrix(half, ksize, alias_blur)
    gauss = a[half - g : half + g + 1, half]  # an interior column: the plain Gaussian
    terms: dict[tuple[int, int], float] = {}
    for u in range(-half, half + 1):
        if abs(u) > radius:
            continue  # an empty row of the disk contributes nothing
        column = np.zeros(2 * (half + g) + 1)
        column[g : g + 2 * half + 1] = a[:, u + half]  # A's column on an axis extended by g
        plain = np.zeros_like(column)
        plain[u + half : u + half + ksize] = gauss
        for index in np.flatnonzero(np.abs(column - plain) > 1e-15):
            key = (int(index) - half - g, int(widths[u + radius]))
            terms[key] = terms.get(key, 0.0) + float(column[index] - plain[index])
    near_edge = [u for u in range(-radius, radius + 1) if abs(u) > half - g]
    if any(u * u + v * v <= radius**2 for u in near_edge for v in near_edge):
        raise ValueError(f"disk radius {radius} reaches a corner of its grid: a product of edge terms is not handled")
    edge_terms = np.array([(dy, w, weight) for (dy, w), weight in sorted(terms.items())], dtype=np.float64).reshape(-1, 3)
    edge_weights = np.unique(edge_terms[:, 2])
    classes = np.searchsorted(edge_weights, edge_terms[:, 2])
    edge_runs = np.column_stack([edge_terms[:, :2].astype(np.int64), classes]).reshape(-1, 3)
    count = int((2 * widths + 1).sum())
    scale = float(np.float32(1) / np.float32(count))
    return DiskPlan(widths, gauss, edge_terms, edge_weights, edge_runs, count, half + g, scale)


def plan_kernel(plan: DiskPlan, radius: int) -> np.ndarray:
    """The kernel a plan stands for, rebuilt from its parts on the grid extended by g (for tests)."""
    size = 2 * plan.pad + 1
    runs = np.zeros((size, size))
    for k, w in enumerate(plan.widths):
        runs[plan.pad + k - radius, plan.pad - w : plan.pad + w + 1] = 1.0
    kernel = cv2.sepFilter2D(runs, -1, plan.gauss, plan.gauss, borderType=cv2.BORDER_CONSTANT)
    for dy, w, weight in plan.edge_terms:
        run = np.zeros(size)
        run[plan.pad - int(w) : plan.pad + int(w) + 1] = weight
        blurred = np.convolve(run, plan.gauss, mode="same")
        kernel[plan.pad + int(dy)] += blurred
        kernel[:, plan.pad + int(dy)] += blurred
    return kernel / plan.count


@njit(cache=True, nogil=True)
def _row_prefix(padded, channels, prefix):
    """prefix[y, x * channels + k] = sum of channel k of row y before column x (exact integers)."""
    for y in range(padded.shape[0]):
        source, target = padded[y], prefix[y]
        target[:channels] = 0
        if channels == 3:  # the running sums stay in registers
            s0 = s1 = s2 = np.int32(0)
            for x in range(source.size // 3):
                s0 += source[3 * x]
                s1 += source[3 * x + 1]
                s2 += source[3 * x + 2]
                target[3 * x + 3] = s0
                target[3 * x + 4] = s1
                target[3 * x + 5] = s2
        else:
            ahead = target[channels:]
            for i in range(source.size):
                ahead[i] = target[i] + source[i]


@njit(cache=True, nogil=True)
def _add_differences(above, below, target):
    """target[i] += above[i] - below[i]: with two rows of a prefix sum, one run sum per position.

    The arrays come sliced, so the index is a plain loop counter and LLVM vectorises the loop."""
    for i in range(target.size):
        target[i] += above[i] - below[i]


@njit(cache=True, nogil=True)
def _add_runs(prefix_row, high, low, target):
    """target[i] += the run prefix_row[i + low : i + high] sums, as prefix sums' difference."""
    _add_differences(prefix_row[high:], prefix_row[low:], target)


@njit(cache=True, nogil=True)
def _add_shifted(source, shift, weight, target):
    """target[i] += weight * source[i + shift]."""
    shifted = source[shift:]
    for i in range(target.size):
        target[i] += weight * shifted[i]


@njit(cache=True, nogil=True)
def _disk_sums(prefix, widths, pad, g, channels, sums):
    """sums[yy, i]: the disk's sum around output row yy - g, flat column i - g * channels (exact)."""
    r = (widths.size - 1) // 2
    for yy in range(sums.shape[0]):
        sums[yy] = 0
        for k in range(widths.size):
            w = widths[k]
            _add_runs(prefix[yy - g + pad + k - r], (pad - g + w + 1) * channels, (pad - g - w) * channels, sums[yy])


@njit(cache=True, nogil=True)
def _blur_rows(source, gauss, channels, target):
    """target[y] = the Gaussian along each row of source[y] (source wider by g pixels on each side)."""
    for y in range(target.shape[0]):
        target[y] = 0.0
        for b in range(gauss.size):
            _add_shifted(source[y], b * channels, gauss[b], target[y])


@njit(cache=True, nogil=True)
def _column_edges(padded, runs, weights, pad, g, channels, columns, counts, across):
    """across += each edge term's weight x the column run it names (rows -g..H+g-1 of the output).

    columns[y, i] becomes the sum of padded rows before y; counts[k] sums the runs of weight k."""
    rows_in, flat_in = padded.shape
    columns[0] = 0
    for y in range(rows_in):
        below, source, above = columns[y], padded[y], columns[y + 1]
        for i in range(flat_in):
            above[i] = below[i] + source[i]
    for yy in range(across.shape[0]):
        y = yy - g + pad
        counts[:] = 0
        for t in range(runs.shape[0]):
            dx, w, k = runs[t, 0], runs[t, 1], runs[t, 2]
            shift = (pad + dx) * channels
            _add_differences(columns[y + w + 1][shift:], columns[y - w][shift:], counts[k])
        for k in range(weights.size):
            _add_shifted(counts[k], 0, weights[k], across[yy])


@njit(cache=True, nogil=True)
def _finish(across, prefix, gauss, runs, weights, pad, channels, scale, counts, out):
    """The Gaussian down the columns, plus the row edge terms (blurred along the row), scaled and cast."""
    g = (gauss.size - 1) // 2
    flat_out = out.shape[1]
    total = np.empty(flat_out, dtype=np.float64)
    edge = np.empty(flat_out + 2 * g * channels, dtype=np.float64)
    for y in range(out.shape[0]):
        total[:] = 0.0
        for a in range(gauss.size):
            _add_shifted(across[y + a], 0, gauss[a], total)
        if runs.shape[0] > 0:
            counts[:] = 0
            for t in range(runs.shape[0]):
                dy, w, k = runs[t, 0], runs[t, 1], runs[t, 2]
                _add_runs(prefix[y + pad + dy], (pad - g + w + 1) * channels, (pad - g - w) * channels, counts[k])
            edge[:] = 0.0
            for k in range(weights.size):
                _add_shifted(counts[k], 0, weights[k], edge)
            for b in range(gauss.size):
                _add_shifted(edge, b * channels, gauss[b], total)
        row = out[y]
        for i in range(flat_out):
            row[i] = np.uint8(min(max(total[i] * scale, 0.0), 255.0))


@njit(cache=True, nogil=True)
def _filter_bands(padded, channels, pad, widths, gauss, runs, weights, scale, prefix, sums, across, columns, counts, counts_ext, out):
    """The filter, band of rows by band of rows: the work arrays stay in cache whatever the image size."""
    g = (gauss.size - 1) // 2
    band = sums.shape[0] - 2 * g
    for top in range(0, out.shape[0], band):
        rows = min(band, out.shape[0] - top)
        source = padded[top : top + rows + 2 * pad]
        _row_prefix(source, channels, prefix[: rows + 2 * pad])
        _disk_sums(prefix, widths, pad, g, channels, sums[: rows + 2 * g])
        _blur_rows(sums, gauss, channels, across[: rows + 2 * g])
        if runs.shape[0] > 0:
            _column_edges(source, runs, weights, pad, g, channels, columns[: rows + 2 * pad + 1], counts, across[: rows + 2 * g])
        _finish(across, prefix, gauss, runs, weights, pad, channels, scale, counts_ext, out[top : top + rows])


BAND_ROWS = 128


def disk_filter(image: np.ndarray, radius: int, alias_blur: float) -> np.ndarray:
    """The reference's `np.uint8(clip(filter2D(image / 255, disk(radius, alias_blur)), 0, 1) * 255)`."""
    plan = disk_plan(radius, alias_blur)
    h, w = image.shape[:2]
    if min(h, w) <= plan.pad:  # reflect-101 would fold more than once: leave it to OpenCV
        x = cv2.filter2D(image.astype(np.float64) / 255, -1, disk(radius, alias_blur).astype(np.float64))
        return (np.clip(x, 0, 1) * 255).astype(np.uint8)
    channels = 1 if image.ndim == 2 else image.shape[2]
    padded = cv2.copyMakeBorder(np.ascontiguousarray(image), *(plan.pad,) * 4, cv2.BORDER_REFLECT_101)
    padded = padded.reshape(padded.shape[0], -1)
    g, pad = (plan.gauss.size - 1) // 2, plan.pad
    rows = min(BAND_ROWS, h)
    prefix = scratch("disk.prefix", (rows + 2 * pad, padded.shape[1] + channels), np.int32)
    sums = scratch("disk.sums", (rows + 2 * g, (w + 2 * g) * channels), np.int32)
    across = scratch("disk.across", (rows + 2 * g, w * channels), np.float64)
    columns = scratch("disk.columns", (rows + 2 * pad + 1, padded.shape[1]), np.int32)
    weights = plan.edge_weights
    counts = scratch("disk.counts", (weights.size, w * channels), np.int32)
    counts_ext = scratch("disk.counts_ext", (weights.size, (w + 2 * g) * channels), np.int32)
    out = np.empty((h, w * channels), dtype=np.uint8)
    _filter_bands(
        padded,
        channels,
        pad,
        plan.widths,
        plan.gauss,
        plan.edge_runs,
        weights,
        plan.scale,
        prefix,
        sums,
        across,
        columns,
        counts,
        counts_ext,
        out,
    )
    return out.reshape(image.shape)
