"""Depth robustness sets: KITTI-C, NYUDepth2-C, and the corruption set of any (image, depth) release.

Each output is one (source frame, corruption, severity): the frame resized (Lanczos) to the set's
size, corrupted with a generator seeded by (release seed, frame, "<corruption>/<severity>"), with
the frame's ground-truth depth untouched at its native size. Releases have one config per
corruption (plus `clean`) and one split per severity (`severity_1`..`severity_5`; `clean/test`).
Work is partitioned by (chunk of frames, corruption, severity); a worker keeps the prepared frames
of its current chunk, so each source frame is read and resized about once per worker.
"""

from __future__ import annotations

import io
import re
import threading
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from builders.robustness.recipe import RNG_RECIPE, corrupted_output
from corruptions import get as get_corruption
from corruptions import names as corruption_set
from corruptions.registry import SETS
from dataengine.core.builder import Builder, Context, Sample, register_builder
from dataengine.core.catalog import BuildSpec, Partition
from dataengine.core.depth_png import UNITS_PER_M, decode_source_depth, encode_depth_png
from dataengine.core.fields import decode_member, encode_image, refuse_exif_orientation
from dataengine.core.rejects import Reject
from dataengine.io.paths import check_regular_file, safe_relative
from dataengine.release.reader import Release

CLEAN = "clean"
# The farthest measurement a source's depth map may hold (metres): NYU's Kinect reaches ~10 m indoors,
# KITTI's LiDAR ~80-120 m outdoors; an 8-bit or rescaled map read as these formats falls far below.
NYU_PLAUSIBLE_MAX_M = (1.0, 20.0)
KITTI_PLAUSIBLE_MAX_M = (2.0, 256.0)
CLEAN_SPLIT = "clean/test"


def output_split(corruption: str, severity: int) -> str:
    return CLEAN_SPLIT if corruption == CLEAN else f"{corruption}/severity_{severity}"


def parse_output_split(split: str) -> tuple[str, int]:
    if split == CLEAN_SPLIT:
        return CLEAN, 0
    corruption, _, level = split.partition("/severity_")
    return corruption, int(level)


def frame_key(frame: str) -> str:
    """A key-safe form of a frame id: `a/b/0001.png` -> `a_b_0001`."""
    stem = frame.rsplit(".", 1)[0] if re.search(r"\.[A-Za-z]{2,4}$", frame) else frame
    return re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")


@dataclass(frozen=True)
class Frame:
    """A source frame: an id (relative path or source key) and where its image and depth are."""

    id: str
    image: Any
    depth: Any = None


@dataclass(frozen=True)
class PreparedFrame:
    rgb: np.ndarray  # resized, uint8
    depth_png: bytes | None
    clipped: int
    source_size: tuple[int, int]  # (width, height)


def check_depth(depth: np.ndarray, image_size: tuple[int, int] | None, frame: str) -> np.ndarray:
    """Ground truth must be 2-D, finite, non-negative and, when `image_size` is given, the size of
    its image (metres, 0 = none)."""
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth of {frame} has shape {depth.shape}; a depth map is 2-D")
    if image_size is not None and (depth.shape[1], depth.shape[0]) != image_size:
        raise ValueError(f"depth of {frame} is {depth.shape[1]}x{depth.shape[0]}, its image {image_size[0]}x{image_size[1]}")
    if not np.isfinite(depth).all():
        raise ValueError(f"depth of {frame} holds NaN or infinite values")
    if (depth < 0).any():
        raise ValueError(f"depth of {frame} holds negative values")
    return depth


class CorruptionSetBuilder(Builder):
    """What KITTI-C, NYUDepth2-C and depth_c share; subclasses say how frames are found and read."""

    task_categories = ("depth-estimation",)

    sample_kind = "depth_c"
    default_set = "kitti-c"
    default_size: tuple[int, int] | None = None
    split_schema = {"type": "object", "additionalProperties": False, "properties": {}}

    def __init__(self) -> None:
        self._frames: dict[str, list[Frame]] = {}
        self._prepared: OrderedDict[tuple[str, int], PreparedFrame] = OrderedDict()
        self._lock = threading.RLock()  # one builder serves every thread of a worker; frames() -> _source() nest

    @property
    def params_schema(self) -> dict[str, Any]:  # type: ignore[override]
        width, height = self.default_size or (None, None)
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "corruptions": {"type": ["string", "array"], "items": {"type": "string"}, "default": self.default_set},
                "severities": {
                    "type": "array",
                    "items": {"type": "integer", "minimum": 1, "maximum": 5},
                    "minItems": 1,
                    "default": [1, 2, 3, 4, 5],
                },
                "clean": {"type": "boolean", "default": True},
                "width": {"type": ["integer", "null"], "minimum": 32, "default": width},
                "height": {"type": ["integer", "null"], "minimum": 32, "default": height},
                **self.extra_params,
            },
        }

    extra_params: dict[str, Any] = {}
    depth_matches_image = True  # False where the source keeps depth at another size (a KITTI-C release)

    def depth_kind(self, spec: BuildSpec) -> str:
        """The member kind of the ground truth: millimetre PNGs unless the source's own code is kept."""
        return "depth"

    @abstractmethod
    def list_frames(self, spec: BuildSpec) -> list[Frame]:
        """Every source frame, in a deterministic order."""

    @abstractmethod
    def read_frame(self, spec: BuildSpec, frame: Frame) -> tuple[np.ndarray, np.ndarray | None]:
        """The frame's RGB (uint8 HxWx3) and ground-truth depth (metres) or None."""

    @abstractmethod
    def has_depth(self, spec: BuildSpec) -> bool:
        """Whether the source gives ground-truth depth."""

    def describe_depth(self, spec: BuildSpec) -> str:
        return "from the source's ground truth, untouched at its native size" if self.has_depth(spec) else ""

    def card_sections(self, manifest: Mapping[str, Any]) -> list[str]:
        params = manifest.get("catalog", {}).get("params", {})
        corruptions = ", ".join(sorted({s.split("/")[0] for s in manifest["splits"] if "/severity_" in s}))
        return [f"- corruptions: {corruptions} at severities {params.get('severities')}" if corruptions else "- corruptions: none"]

    def report_figures(self, release: Any, out: Any) -> list[tuple[str, str | None]]:
        from builders.robustness.report import severity_grid

        return [("One frame under every corruption and severity", severity_grid(release, out))]

    def corruption_names(self, spec: BuildSpec) -> list[str]:
        chosen = spec.params["corruptions"]
        names = corruption_set(chosen) if isinstance(chosen, str) and chosen in SETS else [chosen] if isinstance(chosen, str) else chosen
        return [get_corruption(name).name for name in names]

    def output_splits(self, spec: BuildSpec) -> list[str]:
        severities = sorted(set(spec.params["severities"]))
        clean = [CLEAN_SPLIT] if spec.params["clean"] else []
        return clean + [output_split(name, s) for name in self.corruption_names(spec) for s in severities]

    def fields(self, spec: BuildSpec) -> dict[str, str]:
        return {"rgb.png": "image", "json": "json", **({"depth.png": self.depth_kind(spec)} if self.has_depth(spec) else {})}

    def frames(self, spec: BuildSpec) -> list[Frame]:
        with self._lock:
            if spec.sha256 not in self._frames:
                self._frames[spec.sha256] = self.list_frames(spec)
            return self._frames[spec.sha256]

    def plan(self, spec: BuildSpec) -> list[Partition]:
        if len(spec.splits) != 1:
            raise ValueError(f"builder '{self.name}' reads one source split; the catalog names {', '.join(spec.splits)}")
        if (spec.params["width"] is None) != (spec.params["height"] is None):
            raise ValueError("params.width and params.height go together: give both, or neither to keep the source size")
        frames = self.frames(spec)
        if not frames:
            raise ValueError(f"builder '{self.name}' found no source frames")
        size = spec.shards.max_samples
        partitions = []
        for chunk, start in enumerate(range(0, len(frames), size)):
            items = tuple(range(start, min(start + size, len(frames))))
            partitions.extend(Partition(split, chunk, items) for split in self.output_splits(spec))
        return partitions

    def item_key(self, item: int, ctx: Context) -> str:
        corruption, severity = parse_output_split(ctx.partition.split)
        return f"{corruption}-s{severity}-{frame_key(self.frames(ctx.spec)[item].id)}"

    def item_source(self, item: int, ctx: Context) -> str:
        return str(self.frames(ctx.spec)[item].image)

    def prepared(self, spec: BuildSpec, index: int) -> PreparedFrame:
        """The resized frame and its encoded depth, kept for the partitions of the same chunk."""
        cache_key = (spec.sha256, index)
        with self._lock:
            if cache_key in self._prepared:
                self._prepared.move_to_end(cache_key)
                return self._prepared[cache_key]
        frame = self.frames(spec)[index]
        rgb, depth = self.read_frame(spec, frame)
        source_size = (rgb.shape[1], rgb.shape[0])
        depth_png, clipped = (None, 0)
        if depth is not None:
            depth_png, clipped = encode_depth_png(
                check_depth(depth, source_size if self.depth_matches_image else None, frame.id),
                UNITS_PER_M[self.depth_kind(spec)],
                spec.shards.png_level,
            )
        width, height = spec.params["width"], spec.params["height"]
        if width is not None and (width, height) != source_size:
            rgb = np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.LANCZOS))
        prepared = PreparedFrame(rgb, depth_png, clipped, source_size)
        with self._lock:
            self._prepared[cache_key] = prepared
            while len(self._prepared) > spec.shards.max_samples:
                self._prepared.popitem(last=False)
        return prepared

    def process_item(self, item: int, ctx: Context) -> Iterable[Sample]:
        spec = ctx.spec
        frame = self.frames(spec)[item]
        corruption, severity = parse_output_split(ctx.partition.split)
        prepared = self.prepared(spec, item)
        image = corrupted_output(prepared.rgb, corruption, severity, spec.seed, frame.id)
        key = self.item_key(item, ctx)
        record = {
            "key": key,
            "frame": frame.id,
            "corruption": corruption,
            "severity": severity,
            "seed": spec.seed,
            "rng": RNG_RECIPE,
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "source_width": prepared.source_size[0],
            "source_height": prepared.source_size[1],
            "has_depth": prepared.depth_png is not None,
            "depth_clipped_pixels": prepared.clipped,
        }
        sample: Sample = {
            "__key__": key,
            "__source__": str(frame.image),
            "rgb.png": encode_image(image, "png", spec.shards.png_level),
            "json": record,
        }
        if self.has_depth(spec):
            sample["depth.png"] = prepared.depth_png
        yield sample


def read_rgb(path: Path) -> np.ndarray:
    """The RGB pixels of a source image; one shown rotated or flipped by EXIF is refused (its depth
    could match either orientation)."""
    with Image.open(path) as image:
        refuse_exif_orientation(image, f"image {path}")
        return np.asarray(image.convert("RGB"))


def kitti_image_path(line: str) -> str:
    """A split line -> image path relative to the raw root.

    Accepts `kitti_data/<date>/<drive>/image_02/data/<frame>.png` (KITTI-C's list) and the
    MonoDepth2 form `<date>/<drive> <frame> l|r`.
    """
    parts = line.split()
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 3 and parts[1].isdigit() and parts[2] in ("l", "r"):
        camera = "image_02" if parts[2] == "l" else "image_03"
        return f"{parts[0]}/{camera}/data/{int(parts[1]):010d}.png"
    raise ValueError(f"split line {line!r} is neither a relative image path nor '<folder> <frame> l|r'")


@register_builder("kitti_c")
class KittiC(CorruptionSetBuilder):
    """KITTI-C: a KITTI raw tree and an Eigen-style split, resized to 640x192 (or e.g. 1024x320)."""

    default_set = "kitti-c"
    default_size = (640, 192)

    depth_protocol = "kitti"

    def depth_kind(self, spec: BuildSpec) -> str:
        return "depth_kitti"  # KITTI's own 1/256 m code keeps the 65.5-80 m range the protocol scores

    required_sources = ("root", "split_file")
    extra_params = {"gt_png_scale": {"type": "number", "exclusiveMinimum": 0, "default": 256.0}}

    def has_depth(self, spec: BuildSpec) -> bool:
        return "gt_depths" in spec.sources or "gt_root" in spec.sources

    def list_frames(self, spec: BuildSpec) -> list[Frame]:
        lines = [line.strip() for line in spec.sources["split_file"].read_text().splitlines() if line.strip()]
        gt_npz = spec.sources.get("gt_depths")
        if gt_npz is not None:
            count = len(gt_depth_array(str(gt_npz)))
            if count != len(lines):
                raise ValueError(f"sources.gt_depths holds {count} depth maps but the split has {len(lines)} lines; they must align")
        frames = []
        for index, line in enumerate(lines):
            try:
                relative = kitti_image_path(line)
            except ValueError:
                relative = line  # read_frame raises with the reason; the build rejects this frame
            depth = index if gt_npz is not None else spec.sources["gt_root"] / relative if "gt_root" in spec.sources else None
            frames.append(Frame(relative, spec.sources["root"] / relative, depth))
        return frames

    def read_frame(self, spec: BuildSpec, frame: Frame) -> tuple[np.ndarray, np.ndarray | None]:
        kitti_image_path(frame.id)
        relative = safe_relative(frame.id, "split line")  # a split line must stay inside the raw root
        image = spec.sources["root"] / relative
        if not image.is_file():
            raise FileNotFoundError(f"image {frame.image} of split line {frame.id!r} does not exist")
        rgb = read_rgb(image)
        if frame.depth is None:
            return rgb, None
        if isinstance(frame.depth, int):
            return rgb, gt_depth_array(str(spec.sources["gt_depths"]))[frame.depth]
        depth = spec.sources["gt_root"] / relative
        what = f"KITTI ground truth {depth}"
        check_regular_file(depth, "KITTI ground truth")  # a FIFO or a device would block the read forever
        return rgb, decode_source_depth(depth.read_bytes(), spec.params["gt_png_scale"], what, KITTI_PLAUSIBLE_MAX_M)


_GT_CACHE: dict[str, np.ndarray] = {}


def gt_depth_array(path: str) -> np.ndarray:
    """The `data` array of a gt_depths.npz, never unpickled (a ragged object array is refused)."""
    if path not in _GT_CACHE:
        with np.load(path, allow_pickle=False) as archive:
            if "data" not in archive.files:
                raise ValueError(f"{path} has no 'data' array (keys: {', '.join(archive.files)})")
            try:
                _GT_CACHE.clear()
                _GT_CACHE[path] = archive["data"]
            except ValueError as exc:
                raise ValueError(
                    f"{path} stores depth maps as a pickled object array (frames of different sizes), which "
                    "dataengine never unpickles; give per-frame 16-bit PNGs with sources.gt_root instead"
                ) from exc
    return _GT_CACHE[path]


@register_builder("nyu_c")
class NyuC(CorruptionSetBuilder):
    """NYUDepth2-C: NYU Depth v2 test pairs in the BTS/AdaBins layout (rgb_NNNNN.jpg + sync_depth_NNNNN.png, mm)."""

    depth_protocol = "nyu"
    default_set = "nyu-c"
    default_size = None
    required_sources = ("root",)
    extra_params = {"depth_png_scale": {"type": "number", "exclusiveMinimum": 0, "default": 1000.0}}

    def has_depth(self, spec: BuildSpec) -> bool:
        return True

    def _files(self, spec: BuildSpec) -> tuple[list[Path], list[Path]]:
        """(images, other `rgb_*` files): JPEG (`.jpg`, `.jpeg`) first, then PNG, each sorted; any case."""
        found = [path for path in spec.sources["root"].rglob("rgb_*") if path.is_file()]
        jpeg = sorted(path for path in found if path.suffix.lower() in (".jpg", ".jpeg"))
        png = sorted(path for path in found if path.suffix.lower() == ".png")
        return jpeg + png, sorted(set(found) - set(jpeg) - set(png))

    def list_frames(self, spec: BuildSpec) -> list[Frame]:
        root = spec.sources["root"]
        frames = []
        for image in self._files(spec)[0]:
            depth = image.with_name(image.name.replace("rgb_", "sync_depth_", 1)).with_suffix(".png")
            frames.append(Frame(image.relative_to(root).as_posix(), image, depth))
        return frames

    def planning_rejects(self, spec: BuildSpec) -> list[Reject]:
        """`rgb_*` files that are not a JPEG or PNG image: never framed, so named here."""
        root = spec.sources["root"]
        return [
            Reject(
                key=frame_key(path.relative_to(root).as_posix()),
                source=str(path),
                code="unsupported_image",
                reason=f"{path.name}: an NYU image is rgb_<N>.jpg (or .jpeg / .png); '{path.suffix}' files are not read",
            )
            for path in self._files(spec)[1]
        ]

    def read_frame(self, spec: BuildSpec, frame: Frame) -> tuple[np.ndarray, np.ndarray | None]:
        if not Path(frame.depth).is_file():
            raise FileNotFoundError(f"no depth {Path(frame.depth).name} beside {frame.id}")
        rgb = read_rgb(frame.image)
        what = f"NYU depth {Path(frame.depth).name}"
        return rgb, decode_source_depth(Path(frame.depth).read_bytes(), spec.params["depth_png_scale"], what, NYU_PLAUSIBLE_MAX_M)


@register_builder("depth_c")
class DepthC(CorruptionSetBuilder):
    """The corruption set of any release whose samples have an image and a depth member."""

    default_set = "kitti-c"
    default_size = None
    required_sources = ("release",)
    extra_params = {"source_split": {"type": ["string", "null"], "default": None}}

    depth_matches_image = False  # checked by the release it comes from; KITTI-C keeps native-size depth

    def __init__(self) -> None:
        super().__init__()
        self._sources: dict[str, tuple[Release, str, str, str]] = {}

    def has_depth(self, spec: BuildSpec) -> bool:
        return True

    def _source(self, spec: BuildSpec) -> tuple[Release, str, str, str]:
        """The source release, its split, and its image and depth member names."""
        with self._lock:
            if spec.sha256 not in self._sources:
                self._sources[spec.sha256] = self._open_source(spec)
            return self._sources[spec.sha256]

    def _open_source(self, spec: BuildSpec) -> tuple[Release, str, str, str]:
        release = Release.open(spec.sources["release"])
        split = spec.params["source_split"] or release.splits[0]
        if split not in release.splits:
            raise ValueError(f"params.source_split '{split}' is not in {release.root}; splits: {', '.join(release.splits)}")
        images, depths = release.manifest.members("image"), release.manifest.members("depth")
        if not images or not depths:
            raise ValueError(f"{release.root} has no image and depth members (fields: {release.manifest.fields})")
        return release, split, images[0], depths[0]

    def depth_kind(self, spec: BuildSpec) -> str:
        """The source's own depth code (millimetres, or KITTI's 1/256 m), kept as it is."""
        release, _, _, depth = self._source(spec)
        return release.manifest.fields[depth]

    def list_frames(self, spec: BuildSpec) -> list[Frame]:
        release, split, image, depth = self._source(spec)
        kind = release.manifest.fields[depth]
        return [Frame(key, members[image], (members[depth], kind)) for key, members in release.locate(split).items()]

    def read_frame(self, spec: BuildSpec, frame: Frame) -> tuple[np.ndarray, np.ndarray | None]:
        with Image.open(io.BytesIO(Release.read_located(frame.image))) as image:
            refuse_exif_orientation(image, f"image of {frame.id}")
            rgb = np.asarray(image.convert("RGB"))
        location, kind = frame.depth
        return rgb, decode_member(kind, Release.read_located(location))

    def item_source(self, item: int, ctx: Context) -> str:
        return f"{ctx.spec.sources['release']}#{self.frames(ctx.spec)[item].id}"
