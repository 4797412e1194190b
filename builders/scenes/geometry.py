"""Procedural 3D scenes: a pinhole camera over a ground plane with boxes, spheres and cylinders.

Everything is exact and vectorised: one ray per pixel centre, analytic ray-shape intersections,
Lambertian shading with hard shadows. World frame: y up, ground at y = 0, camera at (0, h, 0)
looking along +z and pitched down. Camera frame: OpenCV (x right, y down, z forward); a pixel
(u, v) with integer indices sees the ray through (u, v), so z-depth back-projects with
X = z (u - cx) / fx, Y = z (v - cy) / fy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

CATEGORIES = ("box", "sphere", "cylinder")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (200, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 210),
    "yellow": (230, 200, 40),
    "purple": (130, 60, 170),
    "orange": (240, 130, 30),
    "cyan": (40, 190, 200),
    "white": (235, 235, 235),
    "gray": (128, 128, 128),
    "brown": (130, 80, 40),
}
_EPS = 1e-9
_SKY_LINEAR = np.array([0.55, 0.70, 0.95]) ** 2.2
# Linear -> 8-bit sRGB-like gamma (1/2.2) through a fine table: exact enough, far cheaper than pow().
_GAMMA_LUT = np.rint(255.0 * np.linspace(0.0, 1.0, 1 << 14) ** (1 / 2.2)).astype(np.uint8)


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics plus the pose above the ground plane."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    height_m: float
    pitch_deg: float

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float, height_m: float, pitch_deg: float) -> Camera:
        fx = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(width, height, fx, fx, (width - 1) / 2.0, (height - 1) / 2.0, height_m, pitch_deg)

    @property
    def rotation(self) -> np.ndarray:
        """World -> camera rotation (rows: camera x, y, z axes in world coordinates)."""
        p = math.radians(self.pitch_deg)
        return np.array([[1.0, 0.0, 0.0], [0.0, -math.cos(p), -math.sin(p)], [0.0, -math.sin(p), math.cos(p)]])

    @property
    def center(self) -> np.ndarray:
        return np.array([0.0, self.height_m, 0.0])

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def ray_directions(self) -> np.ndarray:
        """(H*W, 3) camera-frame directions with z = 1, so the ray parameter is the z-depth."""
        u, v = np.meshgrid(np.arange(self.width, dtype=np.float64), np.arange(self.height, dtype=np.float64))
        return np.stack([(u.ravel() - self.cx) / self.fx, (v.ravel() - self.cy) / self.fy, np.ones(u.size)], axis=1)

    def to_camera(self, points_world: np.ndarray) -> np.ndarray:
        return (np.asarray(points_world) - self.center) @ self.rotation.T

    def project(self, points_camera: np.ndarray) -> np.ndarray:
        """Camera-frame points -> (N, 2) pixel coordinates (integer = pixel centre)."""
        p = np.asarray(points_camera, dtype=np.float64)
        return np.stack([self.fx * p[:, 0] / p[:, 2] + self.cx, self.fy * p[:, 1] / p[:, 2] + self.cy], axis=1)

    def ground_plane(self) -> list[float]:
        """Ground as (a, b, c, d) with a X + b Y + c Z + d = 0 in camera coordinates, normal pointing up."""
        up = self.rotation @ np.array([0.0, 1.0, 0.0])
        return [float(up[0]), float(up[1]), float(up[2]), float(self.height_m)]

    def as_dict(self) -> dict[str, object]:
        return {
            "width": self.width,
            "height": self.height,
            "fx": self.fx,
            "fy": self.fy,
            "cx": self.cx,
            "cy": self.cy,
            "K": self.K.tolist(),
            "height_m": self.height_m,
            "pitch_deg": self.pitch_deg,
            "ground_plane": self.ground_plane(),
        }


@dataclass(frozen=True)
class Shape:
    """One object standing on the ground. `size` is (width x, height y, length z) in its own frame."""

    id: int
    category: str
    color: str
    center: tuple[float, float, float]  # world frame, centre of the bounding volume
    size: tuple[float, float, float]
    yaw_deg: float = 0.0

    @property
    def footprint_radius(self) -> float:
        w, _, l = self.size
        return math.hypot(w, l) / 2.0 if self.category == "box" else w / 2.0

    @property
    def bounding_radius(self) -> float:
        return float(np.linalg.norm(self.size)) / 2.0

    @property
    def albedo(self) -> np.ndarray:
        return (np.array(COLORS[self.color], dtype=np.float64) / 255.0) ** 2.2

    def _yaw(self) -> np.ndarray:
        a = math.radians(self.yaw_deg)
        return np.array([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]])

    def intersect(self, origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest hit parameter t > 0 per ray (inf on a miss) and the world-frame unit normal there."""
        return {"box": self._hit_box, "sphere": self._hit_sphere, "cylinder": self._hit_cylinder}[self.category](
            np.broadcast_to(origins, dirs.shape) - np.asarray(self.center), dirs
        )

    def _hit_box(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        yaw = self._yaw()
        o_l, d_l = o @ yaw, d @ yaw
        half = np.asarray(self.size) / 2.0
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / d_l
            t1, t2 = (-half - o_l) * inv, (half - o_l) * inv
        near = np.nan_to_num(np.minimum(t1, t2), nan=-np.inf)
        far = np.nan_to_num(np.maximum(t1, t2), nan=np.inf)
        axis = near.argmax(axis=1)
        t_in, t_out = near.max(axis=1), far.min(axis=1)
        hit = (t_out >= t_in) & (t_in > _EPS)
        rows = np.arange(len(d))
        normal_l = np.zeros_like(d_l)
        normal_l[rows, axis] = -np.sign(d_l[rows, axis])
        return np.where(hit, t_in, np.inf), normal_l @ yaw.T

    def _hit_sphere(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = self.size[0] / 2.0
        a = np.einsum("ij,ij->i", d, d)
        b = 2.0 * np.einsum("ij,ij->i", d, o)
        c = np.einsum("ij,ij->i", o, o) - r * r
        disc = b * b - 4 * a * c
        root = np.sqrt(np.maximum(disc, 0.0))
        t = (-b - root) / (2 * a)
        t = np.where((disc >= 0) & (t > _EPS), t, np.inf)
        normal = (o + np.where(np.isfinite(t), t, 0.0)[:, None] * d) / r
        return t, normal

    def _hit_cylinder(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r, half_h = self.size[0] / 2.0, self.size[1] / 2.0
        a = d[:, 0] ** 2 + d[:, 2] ** 2
        b = 2.0 * (d[:, 0] * o[:, 0] + d[:, 2] * o[:, 2])
        c = o[:, 0] ** 2 + o[:, 2] ** 2 - r * r
        disc = b * b - 4 * a * c
        with np.errstate(divide="ignore", invalid="ignore"):
            t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2 * a)
            y_side = o[:, 1] + t_side * d[:, 1]
            side_ok = (disc >= 0) & (a > _EPS) & (t_side > _EPS) & (np.abs(y_side) <= half_h)
            t_cap = np.where(o[:, 1] > half_h, (half_h - o[:, 1]) / d[:, 1], np.inf)
        cap_point = o + np.where(np.isfinite(t_cap), t_cap, 0.0)[:, None] * d
        cap_ok = np.isfinite(t_cap) & (t_cap > _EPS) & (cap_point[:, 0] ** 2 + cap_point[:, 2] ** 2 <= r * r)
        t_side = np.where(side_ok, t_side, np.inf)
        t_cap = np.where(cap_ok, t_cap, np.inf)
        t = np.minimum(t_side, t_cap)
        point = o + np.where(np.isfinite(t), t, 0.0)[:, None] * d
        side_normal = np.stack([point[:, 0] / r, np.zeros(len(d)), point[:, 2] / r], axis=1)
        normal = np.where((t_cap < t_side)[:, None], np.array([0.0, 1.0, 0.0]), side_normal)
        return t, normal

    def amodal_box(self, camera: Camera) -> list[float]:
        """Tight 2-D box of the whole projected shape, in pixel-edge coordinates, clipped to the image."""
        if self.category == "sphere":
            c = camera.to_camera(np.asarray(self.center)[None])[0]
            r = self.size[0] / 2.0
            us = [camera.fx * k + camera.cx for k in _tangent_slopes(c[0], c[2], r)]
            vs = [camera.fy * k + camera.cy for k in _tangent_slopes(c[1], c[2], r)]
            x0, x1, y0, y1 = min(us), max(us), min(vs), max(vs)
        else:
            uv = camera.project(camera.to_camera(self.outline_points()))
            x0, y0 = uv.min(axis=0)
            x1, y1 = uv.max(axis=0)
        return [
            float(np.clip(x0 + 0.5, 0, camera.width)),
            float(np.clip(y0 + 0.5, 0, camera.height)),
            float(np.clip(x1 + 0.5, 0, camera.width)),
            float(np.clip(y1 + 0.5, 0, camera.height)),
        ]

    def outline_points(self, n: int = 720) -> np.ndarray:
        """World points whose projection bounds the silhouette: box corners or cylinder rims."""
        w, h, l = self.size
        if self.category == "box":
            corners = np.array([[sx * w, sy * h, sz * l] for sx in (-0.5, 0.5) for sy in (-0.5, 0.5) for sz in (-0.5, 0.5)])
            return corners @ self._yaw().T + np.asarray(self.center)
        angles = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
        rim = np.stack([np.cos(angles) * w / 2, np.zeros(n), np.sin(angles) * w / 2], axis=1)
        return np.concatenate([rim + [0, -h / 2, 0], rim + [0, h / 2, 0]]) + np.asarray(self.center)

    def as_dict(self, camera: Camera) -> dict[str, object]:
        return {
            "id": self.id,
            "category": self.category,
            "color": self.color,
            "rgb": list(COLORS[self.color]),
            "center_world": [float(v) for v in self.center],
            "center": [float(v) for v in camera.to_camera(np.asarray(self.center)[None])[0]],
            "size": [float(v) for v in self.size],
            "yaw_deg": float(self.yaw_deg),
        }


def _tangent_slopes(c_a: float, c_z: float, r: float) -> tuple[float, float]:
    """Slopes k of the two planes a = k z through the camera tangent to a sphere (exact extent)."""
    qa = c_z * c_z - r * r
    root = r * math.sqrt(max(c_a * c_a + c_z * c_z - r * r, 0.0))
    return ((c_a * c_z - root) / qa, (c_a * c_z + root) / qa)


@dataclass(frozen=True)
class Rendering:
    rgb: np.ndarray  # uint8 HxWx3
    depth: np.ndarray  # float32 HxW metres along the optical axis, 0 for sky
    mask: np.ndarray  # uint16 HxW, shape id, 0 = ground or sky
    light: np.ndarray  # unit vector towards the light (world)


@lru_cache(maxsize=4)
def _rays(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel ray directions in the camera and the world frame, shared by renders of one camera."""
    dirs_c = camera.ray_directions()
    dirs = dirs_c @ camera.rotation  # camera -> world (rotation is orthonormal)
    dirs_c.flags.writeable = False
    dirs.flags.writeable = False
    return dirs_c, dirs


def render(camera: Camera, shapes: list[Shape], light: np.ndarray, ambient: float = 0.35, shadows: bool = True) -> Rendering:
    """Ray-cast the scene: exact depth and instance ids per pixel, shaded colour."""
    dirs_c, dirs = _rays(camera)
    origin = camera.center
    n = len(dirs)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_best = np.where(dirs[:, 1] < 0, -origin[1] / dirs[:, 1], np.inf)
    ids = np.zeros(n, dtype=np.int32)
    normals = np.zeros((n, 3))
    normals[:, 1] = 1.0
    for shape in shapes:
        idx = _pixels_in_box(camera, shape.amodal_box(camera))
        t, normal = shape.intersect(origin, dirs[idx])
        closer = t < t_best[idx]
        won = idx[closer]
        t_best[won] = t[closer]
        ids[won] = shape.id
        normals[won] = normal[closer]
    hit = np.isfinite(t_best)
    points = np.where(hit, t_best, 0.0)[:, None] * dirs
    points += origin

    lit = np.clip(normals @ light, 0.0, 1.0)
    if shadows and shapes:
        idx = np.flatnonzero(hit & (lit > 0))
        starts = points[idx] + normals[idx] * 1e-6
        light_dirs = np.broadcast_to(light, starts.shape)
        blocked = np.zeros(len(idx), dtype=bool)
        # Only rays passing in front of a shape within its bounding radius can hit it; test all
        # shapes at once with |c - p|^2 - ((c - p).l)^2 <= r^2.
        centers = np.array([shape.center for shape in shapes])
        radii = np.array([shape.bounding_radius for shape in shapes])
        along = (centers @ light)[None, :] - (starts @ light)[:, None]
        dist2 = (centers**2).sum(1)[None, :] - 2.0 * starts @ centers.T + (starts**2).sum(1)[:, None] - along**2
        near = (along > 0) & (dist2 <= radii[None, :] ** 2)
        for j, shape in enumerate(shapes):
            cand = np.flatnonzero(near[:, j] & ~blocked)
            if len(cand):
                blocked[cand] |= np.isfinite(shape.intersect(starts[cand], light_dirs[cand])[0])
        lit[idx[blocked]] = 0.0

    palette = np.array([[0.0, 0.0, 0.0]] + [shape.albedo for shape in shapes])
    albedo = palette[ids]
    ground = np.flatnonzero(hit & (ids == 0))
    gx, gz, gt = points[ground, 0], points[ground, 2], t_best[ground]
    checker = (np.floor(gx) + np.floor(gz)) % 2
    tone = 0.30 + 0.12 * (checker - 0.5) * np.exp(-gt / 40.0)
    albedo[ground] = tone[:, None] * np.array([1.0, 0.95, 0.85])
    linear = albedo * (ambient + (1.0 - ambient) * lit)[:, None]
    sky = np.flatnonzero(~hit)
    elevation = np.clip(-(dirs_c[sky, 1] * camera.fy) / camera.height, -1, 1)
    linear[sky] = _SKY_LINEAR * (0.7 + 0.3 * elevation[:, None]) ** 2.2
    codes = np.rint(np.clip(linear, 0.0, 1.0) * (_GAMMA_LUT.size - 1)).astype(np.int32)
    rgb = _GAMMA_LUT[codes]
    depth = np.where(hit, t_best, 0.0).astype(np.float32)
    shape_hw = (camera.height, camera.width)
    return Rendering(rgb.reshape(*shape_hw, 3), depth.reshape(shape_hw), ids.astype(np.uint16).reshape(shape_hw), light)


def _pixels_in_box(camera: Camera, box: list[float]) -> np.ndarray:
    """Flat indices of the pixels whose centres can fall inside a pixel-edge box (one pixel margin)."""
    u0, v0 = max(int(math.floor(box[0])) - 1, 0), max(int(math.floor(box[1])) - 1, 0)
    u1, v1 = min(int(math.ceil(box[2])) + 1, camera.width), min(int(math.ceil(box[3])) + 1, camera.height)
    if u1 <= u0 or v1 <= v0:
        return np.zeros(0, dtype=np.int64)
    rows = np.arange(v0, v1)[:, None] * camera.width
    return (rows + np.arange(u0, u1)[None, :]).ravel()


def sample_layout(
    rng: np.random.Generator,
    camera: Camera,
    hfov_deg: float,
    count: int,
    depth_range: tuple[float, float],
    gap: float = 0.25,
) -> list[Shape]:
    """Place up to `count` non-overlapping shapes on the ground inside the camera's view."""
    shapes: list[Shape] = []
    near, far = depth_range
    tan_half = math.tan(math.radians(hfov_deg) / 2)
    for _ in range(60 * max(count, 1)):
        if len(shapes) == count:
            break
        category = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
        color = list(COLORS)[int(rng.integers(len(COLORS)))]
        if category == "box":
            size = (float(rng.uniform(0.4, 2.0)), float(rng.uniform(0.3, 2.0)), float(rng.uniform(0.4, 2.0)))
        elif category == "sphere":
            d = float(rng.uniform(0.4, 1.8))
            size = (d, d, d)
        else:
            d = float(rng.uniform(0.3, 1.4))
            size = (d, float(rng.uniform(0.4, 2.2)), d)
        yaw = float(rng.uniform(0.0, 90.0)) if category == "box" else 0.0
        z = float(rng.uniform(near, far))
        reach = max(z * tan_half * 0.85 - size[0] / 2, 0.0)
        x = float(rng.uniform(-reach, reach))
        candidate = Shape(len(shapes) + 1, category, color, (x, size[1] / 2.0, z), size, yaw)
        if all(math.hypot(x - s.center[0], z - s.center[2]) > candidate.footprint_radius + s.footprint_radius + gap for s in shapes):
            shapes.append(candidate)
    # Ids follow distance so they do not depend on the order of placement attempts.
    shapes.sort(key=lambda s: (s.center[2], s.center[0]))
    return [Shape(i + 1, s.category, s.color, s.center, s.size, s.yaw_deg) for i, s in enumerate(shapes)]


def sample_light(rng: np.random.Generator) -> np.ndarray:
    elevation = math.radians(rng.uniform(30.0, 70.0))
    azimuth = math.radians(rng.uniform(-150.0, -30.0))
    return np.array([math.cos(elevation) * math.cos(azimuth), math.sin(elevation), math.cos(elevation) * math.sin(azimuth)])
