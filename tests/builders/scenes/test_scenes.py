"""The renderer against geometry computed independently: implicit surfaces, closed forms, sampling."""

import math

import numpy as np
import pytest

from builders.scenes.builder import ScenesBuilder
from builders.scenes.geometry import Camera, Shape, render, sample_layout, sample_light
from dataengine.core.builder import Context
from dataengine.core.catalog import load_catalog
from dataengine.core.depth_png import decode_depth_png
from dataengine.core.fields import decode_member
from tests.conftest import write_catalog

CAMERA = Camera.from_fov(320, 240, 70, 1.6, 8)


def backproject(camera: Camera, depth: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Pixel + z-depth -> world point, written out from the pinhole model (not the renderer's code)."""
    z = depth[rows, cols].astype(np.float64)
    cam = np.stack([z * (cols - camera.cx) / camera.fx, z * (rows - camera.cy) / camera.fy, z], axis=1)
    pitch = math.radians(camera.pitch_deg)
    # camera axes expressed in the world: x right, y down-and-forward, z forward-and-down
    right, down, forward = (
        np.array([1, 0, 0]),
        np.array([0, -math.cos(pitch), -math.sin(pitch)]),
        np.array([0, -math.sin(pitch), math.cos(pitch)]),
    )
    return np.array([0, camera.height_m, 0]) + cam[:, :1] * right + cam[:, 1:2] * down + cam[:, 2:3] * forward


def surface_residual(shape: Shape, points: np.ndarray) -> np.ndarray:
    """Distance-like residual of points to the shape's surface (0 on the surface)."""
    rel = points - np.asarray(shape.center)
    w, h, l = shape.size
    if shape.category == "sphere":
        return np.abs(np.linalg.norm(rel, axis=1) - w / 2)
    if shape.category == "cylinder":
        radial = np.hypot(rel[:, 0], rel[:, 2])
        on_side = np.abs(radial - w / 2) + np.maximum(np.abs(rel[:, 1]) - h / 2, 0)
        on_top = np.abs(rel[:, 1] - h / 2) + np.maximum(radial - w / 2, 0)
        return np.minimum(on_side, on_top)
    a = math.radians(shape.yaw_deg)
    local_x = rel[:, 0] * math.cos(a) - rel[:, 2] * math.sin(a)
    local_z = rel[:, 0] * math.sin(a) + rel[:, 2] * math.cos(a)
    excess = np.stack([np.abs(local_x) - w / 2, np.abs(rel[:, 1]) - h / 2, np.abs(local_z) - l / 2], axis=1)
    return np.abs(excess.max(axis=1))  # on a box surface the largest excess is exactly 0


def scene(seed: int, count: int = 5) -> tuple[list[Shape], np.ndarray]:
    rng = np.random.default_rng(seed)
    return sample_layout(rng, CAMERA, 70, count, (3.0, 20.0)), sample_light(rng)


@pytest.mark.parametrize("seed", range(6))
def test_object_pixels_lie_on_their_shape(seed):
    shapes, light = scene(seed)
    rendering = render(CAMERA, shapes, light)
    assert {int(i) for i in np.unique(rendering.mask)} <= {0} | {s.id for s in shapes}
    for shape in shapes:
        rows, cols = np.nonzero(rendering.mask == shape.id)
        if len(rows) == 0:
            continue
        points = backproject(CAMERA, rendering.depth, rows, cols)
        assert surface_residual(shape, points).max() < 1e-4 * max(shape.center[2], 1), shape.category


@pytest.mark.parametrize("seed", range(4))
def test_background_is_ground_or_sky(seed):
    shapes, light = scene(seed)
    rendering = render(CAMERA, shapes, light)
    rows, cols = np.nonzero((rendering.mask == 0) & (rendering.depth > 0))
    points = backproject(CAMERA, rendering.depth, rows, cols)
    assert np.abs(points[:, 1]).max() < 1e-6 * rendering.depth.max()
    # sky pixels look above the horizon: their rays never reach the ground
    sky_rows = np.nonzero(rendering.depth == 0)[0]
    horizon_v = CAMERA.cy - CAMERA.fy * math.tan(math.radians(CAMERA.pitch_deg))
    assert (sky_rows <= horizon_v + 1).all()


def test_sphere_depth_matches_closed_form():
    sphere = Shape(1, "sphere", "red", (0.5, 1.0, 8.0), (2.0, 2.0, 2.0))
    rendering = render(CAMERA, [sphere], np.array([0.0, 1.0, 0.0]))
    rows, cols = np.nonzero(rendering.mask == 1)
    assert len(rows) > 500
    # ray through pixel: camera-frame direction d = ((u-cx)/fx, (v-cy)/fy, 1); z-depth = t.
    d = np.stack([(cols - CAMERA.cx) / CAMERA.fx, (rows - CAMERA.cy) / CAMERA.fy, np.ones(len(rows))], axis=1)
    c = CAMERA.to_camera(np.array([sphere.center]))[0]
    a = (d * d).sum(1)
    b = -2 * d @ c
    cc = c @ c - 1.0
    t = (-b - np.sqrt(b * b - 4 * a * cc)) / (2 * a)
    np.testing.assert_allclose(rendering.depth[rows, cols], t, rtol=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_boxes_agree_with_mask_and_projected_geometry(seed, tmp_path):
    spec = load_catalog(write_catalog_for_geometry(tmp_path, seed))
    builder = ScenesBuilder()
    part = builder.plan(spec)[0]
    ctx = Context(spec, part)
    for sample in builder.process(part, ctx):
        record = sample["json"]
        mask = decode_member("mask", sample["mask.png"])
        depth = decode_depth_png(sample["depth.png"])
        camera = Camera.from_fov(record["camera"]["width"], record["camera"]["height"], 70, 1.6, 8)
        assert np.allclose(np.array(record["camera"]["K"]), camera.K)
        for obj in record["objects"]:
            rows, cols = np.nonzero(mask == obj["id"])
            assert obj["pixels"] == len(rows) >= 4
            assert obj["box_2d"] == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
            shape = Shape(obj["id"], obj["category"], obj["color"], tuple(obj["center_world"]), tuple(obj["size"]), obj["yaw_deg"])
            expected = sampled_amodal_box(shape, camera)
            np.testing.assert_allclose(obj["box_2d_amodal"], expected, atol=0.35)
            x0, y0, x1, y1 = obj["box_2d_amodal"]
            assert x0 <= cols.min() + 0.5 and cols.max() + 0.5 <= x1 and y0 <= rows.min() + 0.5 and rows.max() + 0.5 <= y1
            # stored depth (mm PNG) back-projects onto the surface within quantisation
            points = backproject(camera, depth, rows, cols)
            assert surface_residual(shape, points).max() < 2e-3 + 1e-3 * obj["center"][2]
            # centre in camera coordinates agrees with the world centre through the extrinsics
            np.testing.assert_allclose(obj["center"], camera.to_camera(np.array([obj["center_world"]]))[0], atol=1e-9)


def write_catalog_for_geometry(directory, seed: int):
    return write_catalog(
        directory, seed=seed, params={"width": 320, "height": 240, "objects": [3, 6]}, splits={"train": {"num_samples": 3}}
    )


def sampled_amodal_box(shape: Shape, camera: Camera) -> list[float]:
    """Project a dense sampling of the whole surface (an oracle independent of the analytic box)."""
    w, h, l = shape.size
    u, v = np.meshgrid(np.linspace(0, 2 * math.pi, 721), np.linspace(0, math.pi, 361))
    if shape.category == "sphere":
        local = np.stack([np.sin(v) * np.cos(u), np.cos(v), np.sin(v) * np.sin(u)], -1).reshape(-1, 3) * w / 2
    elif shape.category == "cylinder":
        heights = np.linspace(-h / 2, h / 2, 50)
        theta = np.linspace(0, 2 * math.pi, 1441)
        tt, hh = np.meshgrid(theta, heights)
        local = np.stack([np.cos(tt) * w / 2, hh, np.sin(tt) * w / 2], -1).reshape(-1, 3)
    else:
        g = np.linspace(-0.5, 0.5, 21)
        gx, gy, gz = np.meshgrid(g, g, g)
        local = np.stack([gx, gy, gz], -1).reshape(-1, 3) * np.array([w, h, l])
        a = math.radians(shape.yaw_deg)
        rot = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
        local = local @ rot.T
    uv = camera.project(camera.to_camera(local + np.asarray(shape.center)))
    lo, hi = uv.min(0) + 0.5, uv.max(0) + 0.5
    return [
        float(np.clip(lo[0], 0, camera.width)),
        float(np.clip(lo[1], 0, camera.height)),
        float(np.clip(hi[0], 0, camera.width)),
        float(np.clip(hi[1], 0, camera.height)),
    ]


def test_same_key_same_bytes_and_keys_differ(tmp_path):
    spec = load_catalog(write_catalog(tmp_path, splits={"train": {"num_samples": 4}}))
    builder = ScenesBuilder()
    part = builder.plan(spec)[0]
    first = list(builder.process(part, Context(spec, part)))
    second = list(builder.process(part, Context(spec, part)))
    assert [s["rgb.png"] for s in first] == [s["rgb.png"] for s in second]
    assert len({s["rgb.png"] for s in first}) == len(first)


def test_kitti_resolution_renders():
    camera = Camera.from_fov(1242, 375, 81, 1.65, 2)
    shapes, light = sample_layout(np.random.default_rng(3), camera, 81, 6, (5.0, 40.0)), np.array([0.3, 0.8, -0.5])
    rendering = render(camera, shapes, light / np.linalg.norm(light))
    assert rendering.rgb.shape == (375, 1242, 3) and rendering.depth.shape == (375, 1242)
    assert len(np.unique(rendering.mask)) > 1


def test_plan_is_deterministic_and_partitioned(tmp_path):
    spec = load_catalog(write_catalog(tmp_path))
    builder = ScenesBuilder()
    plan = builder.plan(spec)
    assert plan == builder.plan(spec)
    assert [p.id for p in plan] == [f"train-{i:06d}" for i in range(5)] + ["validation-000000", "validation-000001"]
    assert sum(len(p.items) for p in plan) == 26


def test_jpeg_variant_passes_the_schema(tmp_path):
    from dataengine.core.schema import SampleSchema
    from dataengine.run.worker import prepare_sample

    spec = load_catalog(write_catalog(tmp_path, params={"image_format": "jpg"}, splits={"train": {"num_samples": 2}}))
    builder = ScenesBuilder()
    part = builder.plan(spec)[0]
    fields = builder.fields(spec)
    assert "rgb.jpg" in fields
    for sample in builder.process(part, Context(spec, part)):
        key, members = prepare_sample(sample, fields, SampleSchema.load("scene"), set())
        image = decode_member("image", members["rgb.jpg"])
        assert image.shape == (72, 96, 3) and members["rgb.jpg"][:2] == b"\xff\xd8"
