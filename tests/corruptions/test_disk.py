"""defocus_blur's running-sum disk filter against the reference's operation (OpenCV's filter2D in
float64 with the reference's kernel) and against the kernel it claims to stand for."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from corruptions.blur import DEFOCUS
from corruptions.disk import disk, disk_filter, disk_plan, plan_kernel
from tests.corruptions.conftest import photo


def reference(image: np.ndarray, radius: int, alias: float) -> np.ndarray:
    """The reference's defocus: filter2D(image / 255, disk) in float64, clipped, x 255, truncated."""
    x = cv2.filter2D(image / 255.0, -1, disk(radius, alias).astype(np.float64))
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def disk_grid_mask(radius: int) -> np.ndarray:
    grid = np.arange(-radius, radius + 1)
    return grid[:, None] ** 2 + grid[None, :] ** 2 <= radius**2


@pytest.mark.parametrize("radius, alias", DEFOCUS)
def test_the_plan_rebuilds_the_reference_kernel(radius, alias):
    """G * D / N plus the edge terms, on a grid wider by the Gaussian's reach, is the reference's
    kernel inside and zero outside: the reflection and the crop at the grid's edge are accounted for."""
    plan = disk_plan(radius, alias)
    g = (plan.gauss.size - 1) // 2
    rebuilt = plan_kernel(plan, radius)
    inside = rebuilt[g : rebuilt.shape[0] - g, g : rebuilt.shape[1] - g]
    assert np.abs(inside - disk(radius, alias)).max() < 1e-8
    rebuilt[g : rebuilt.shape[0] - g, g : rebuilt.shape[1] - g] = 0
    assert np.abs(rebuilt).max() < 1e-12
    assert plan.count == int(disk_grid_mask(radius).sum())


def test_the_kernel_outgrows_one_at_large_radii():
    """The reference's reflect-101 blur of a disk touching its grid adds mass (the kernel sums to
    about 1.01 at severities 4-5): a plain disk-then-Gaussian filter would be ~1% too dark."""
    assert disk(8, 0.5).sum() == pytest.approx(1.013, abs=1e-3)
    assert len(disk_plan(8, 0.5).edge_terms) > 0 and len(disk_plan(6, 0.5).edge_terms) == 0


@pytest.mark.parametrize("radius, alias", DEFOCUS)
@pytest.mark.parametrize("shape", [(192, 640, 3), (61, 47, 3), (40, 90)])
def test_matches_the_reference_operation(radius, alias, shape):
    image = photo("astronaut", (shape[1], shape[0]))
    image = image if len(shape) == 3 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    ours, theirs = disk_filter(image, radius, alias), reference(image, radius, alias)
    difference = np.abs(ours.astype(np.int16) - theirs)
    assert difference.max() <= 1 and np.mean(difference == 0) >= 0.9999


def test_ties_truncate_as_the_reference():
    """Severity 1 is a plain disk of 29 pixels: a disk sum divisible by 29 is an exact grey level,
    and the reference's float32 1/29 sits just below 1/29, so its cast lands one level down."""
    image = np.full((64, 64, 3), 58, dtype=np.uint8)
    assert np.array_equal(disk_filter(image, 3, 0.1), reference(image, 3, 0.1))
    assert reference(image, 3, 0.1)[0, 0, 0] == 57


def test_images_smaller_than_the_kernel_fall_back_to_opencv():
    image = np.random.default_rng(0).integers(0, 256, (12, 30, 3), dtype=np.uint8)
    assert np.array_equal(disk_filter(image, 10, 0.5), reference(image, 10, 0.5))


def test_repeated_calls_with_other_sizes_do_not_mix_their_work_arrays():
    small, large = photo("astronaut", (64, 40)), photo("coffee", (300, 200))
    first = disk_filter(large, 8, 0.5)
    disk_filter(small, 8, 0.5)
    assert np.array_equal(disk_filter(large, 8, 0.5), first)
