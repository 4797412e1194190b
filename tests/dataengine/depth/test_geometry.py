"""Geometry against closed forms; each relation on constructed cases."""

import math

import numpy as np
import pytest

from dataengine.depth.geometry import Intrinsics, backproject, box_mask, distance, extent, level, relations

K = Intrinsics(fx=500.0, fy=500.0, cx=319.5, cy=239.5)


def test_fronto_parallel_square_back_projects_to_its_size():
    depth = np.zeros((480, 640), np.float32)
    z, size = 4.0, 1.2  # a 1.2 m square 4 m away spans 150 pixels at fx = 500
    span = size * K.fx / z
    u0, v0 = 200, 150
    depth[v0 : v0 + int(span) + 1, u0 : u0 + int(span) + 1] = z
    points = backproject(depth, K, depth > 0)
    sizes = extent(points)
    assert sizes["width"] == pytest.approx(size, rel=0.01) and sizes["height"] == pytest.approx(size, rel=0.01)
    assert sizes["depth"] == 0.0
    assert points[:, 2].min() == z


def test_box_mask_trims_the_background():
    depth = np.full((100, 100), 20.0, np.float32)  # wall far behind
    depth[30:70, 40:60] = 5.0  # object
    mask = box_mask(depth, (30, 20, 70, 80))
    assert mask[30:70, 40:60].all() and mask.sum() == 40 * 20
    with pytest.raises(ValueError, match="outside"):
        box_mask(depth, (90, 10, 120, 20))
    assert not box_mask(np.zeros((10, 10)), (0, 0, 5, 5)).any()


def test_distance_is_the_mean_of_directed_nearest_neighbour_distances():
    a = np.array([[0.0, 0.0, 5.0]])
    b = np.array([[3.0, 4.0, 5.0]])
    assert distance(a, b) == pytest.approx(5.0)
    a2 = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    b2 = np.array([[3.0, 0.0, 0.0]])
    # a->b: (3 + 2) / 2 = 2.5; b->a: 2; mean 2.25
    assert distance(a2, b2) == pytest.approx(2.25)


@pytest.mark.parametrize(
    "b_centre,left,above,hour",
    [
        ((2.0, 0.0, 5.0), True, False, 3),
        ((-2.0, 0.0, 5.0), False, False, 9),
        ((0.0, 0.0, 9.0), False, False, 12),
        ((0.0, 0.0, 1.0), False, False, 6),
        ((1.0, 0.0, 6.732), True, False, 1),
        ((2.0, 0.0, 7.0), True, False, 2),
        ((0.0, -1.0, 5.0), False, True, 12),
    ],
)
def test_relations(b_centre, left, above, hour):
    a = np.array([[0.0, 0.0, 5.0], [0.0, 0.2, 5.2]]) - np.array([0.0, 0.1, 0.1])
    b = np.array(b_centre)[None] + np.array([[0.0, -0.1, -0.1], [0.0, 0.1, 0.1]])
    facts = relations(a, b)
    assert facts["left_of"] == left and facts["clock_of_b_from_a"] == hour
    assert facts["above"] == (a[:, 1].mean() > b[:, 1].mean())
    assert facts["nearer"] == (a[:, 2].min() < b[:, 2].min())


def test_intrinsics_from_fov():
    k = Intrinsics.from_fov(640, 480, 90.0)
    assert k.fx == pytest.approx(320.0) and k.cx == 319.5 and k.cy == 239.5
    assert math.degrees(2 * math.atan(320 / k.fx)) == pytest.approx(90.0)


def test_no_points_is_an_error():
    with pytest.raises(ValueError, match="no valid depth"):
        extent(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="differ in size"):
        backproject(np.zeros((4, 4)), K, np.zeros((4, 5), bool))


def test_level_frame_undoes_the_pitch():
    # A vertical 2 m pole 10 m ahead of a camera pitched down 20 degrees: upright again in the level frame.
    pitch = math.radians(20)
    rotation = np.array([[1, 0, 0], [0, -math.cos(pitch), -math.sin(pitch)], [0, -math.sin(pitch), math.cos(pitch)]])
    heights = np.linspace(-1.5, 0.5, 11)  # world y relative to the camera centre
    world = np.stack([np.full_like(heights, 0.5), heights, np.full_like(heights, 10.0)], axis=1)
    camera = world @ rotation.T
    levelled = level(camera, 20.0)
    np.testing.assert_allclose(levelled, world, atol=1e-12)
    assert extent(levelled)["height"] == pytest.approx(2.0) and extent(camera)["height"] < 1.9
    np.testing.assert_allclose(level(camera[:2], 0.0), camera[:2] * [1, -1, 1])
