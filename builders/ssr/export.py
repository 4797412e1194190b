"""`dataengine export ssr-cot`: an SSR-CoT release in the layout SSR-CoT's own code reads.

Depth there means what SSR's depth source means: dense metric depth, far is large. A release keeps
0 for "no measurement" (sky, invalid stereo), but SSR's loader min-max normalises each map, so a 0
would read as the nearest thing in the picture. The export therefore fills holes by default
(`holes="max"`): each hole pixel gets its own map's largest valid depth. The per-map maximum, not a
fixed far value, keeps the normalised range of the measured pixels exactly as it was, and the sky
reads as the farthest thing. `holes="keep"` (`--holes keep`) writes the release's maps
unchanged. Either way `ssr-cot.export.json` beside `ssr-cot.jsonl` records the rule and, per map,
the hole pixels and the fill value in millimetres.
"""

from __future__ import annotations

import io
import json
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from dataengine.core.fields import decode_member
from dataengine.core.png import encode_png
from dataengine.io.atomic import write_bytes_atomic
from dataengine.io.paths import safe_join
from dataengine.release.reader import Release

SIDECAR = "ssr-cot.export.json"
HOLE_RULES = {
    "max": (
        "pixels without a measurement (0 in the release) hold their map's largest valid depth (fill_mm per map), so SSR's "
        "per-map min-max normalisation reads them as the farthest thing and the measured pixels keep their normalised values; "
        "a map with no valid pixel is left as it is (fill_mm null)"
    ),
    "keep": "pixels without a measurement keep 0, as in the release (SSR's min-max normalisation reads them as the nearest thing)",
}


def depth_path_for(image_path: str) -> str:
    """SSR-CoT's rule: `GQA/123.jpg` -> `GQA_d/123.png`."""
    parts = PurePosixPath(image_path).parts
    if len(parts) < 2:
        raise ValueError(f"image path {image_path!r} has no folder; SSR-CoT paths are <folder>/<file>")
    return str(PurePosixPath(f"{parts[0]}_d", *parts[1:]).with_suffix(".png"))


def _write_once(target: Path, data: bytes) -> bool:
    """Write `data` atomically unless `target` already holds it; a different file there is an error."""
    if target.exists():
        if target.read_bytes() != data:
            raise ValueError(f"{target} exists with different content; two samples map to one path (or an export with other options)")
        return False
    write_bytes_atomic(target, data)
    return True


def _depth_codes(depth_png: bytes) -> np.ndarray:
    """The uint16 millimetre codes of a release's depth PNG."""
    with Image.open(io.BytesIO(depth_png)) as image:
        if image.mode not in ("I;16", "I;16B", "I;16L", "I"):
            raise ValueError(f"depth PNG must be 16-bit greyscale, got mode {image.mode}")
        return np.asarray(image).astype(np.uint16)


def fill_holes(depth_png: bytes, holes: str) -> tuple[bytes, dict[str, Any]]:
    """The map as exported and what was done to it: `{"hole_pixels": n, "fill_mm": code or None}`.
    A map that needs no change keeps the release's bytes."""
    codes = _depth_codes(depth_png)
    missing = codes == 0
    count = int(np.count_nonzero(missing))
    if holes == "keep" or count in (0, codes.size):
        return depth_png, {"hole_pixels": count, "fill_mm": None}
    fill = int(codes.max())
    filled = np.where(missing, np.uint16(fill), codes)
    return encode_png(filled), {"hole_pixels": count, "fill_mm": fill}


def _sidecar(source: Release, holes: str, maps: dict[str, dict[str, Any]]) -> bytes:
    """`ssr-cot.export.json`: which release, the hole rule, and per depth map its holes and fill."""
    document = {
        "layout": "ssr-cot",
        "release": {"name": source.manifest.name, "version": source.manifest.version, "catalog_sha256": source.manifest.catalog_sha256},
        "depth": {"unit": "mm", "invalid_value": 0, "holes": holes, "rule": HOLE_RULES[holes], "maps": dict(sorted(maps.items()))},
    }
    return (json.dumps(document, indent=1, ensure_ascii=False) + "\n").encode()


def export_ssr_cot(release: str | Path, out: str | Path, holes: str = "max") -> int:
    """`<out>/ssr-cot.jsonl` (exactly question, rationale, answer, image_path, depth_path per line)
    with each image at `<out>/<image_path>` and its depth (uint16 mm PNG, clipped, never wrapped) at
    `<out>/<folder>_d/<rest>.png`, the layout SSR-CoT's code reads; holes filled by `holes` ("max":
    the map's largest valid depth, the default; "keep": 0), recorded in `<out>/ssr-cot.export.json`.
    Returns the number of records."""
    if holes not in HOLE_RULES:
        raise ValueError(f"holes={holes!r}: give 'max' (fill each map's holes with its largest valid depth; the default) or 'keep' (0)")
    source, root = Release.open(release), Path(out)
    if source.manifest.sample_kind != "ssr_cot":
        raise ValueError(f"{release} is a '{source.manifest.sample_kind}' release; this export needs an SSR-CoT release (ssr_cot)")
    root.mkdir(parents=True, exist_ok=True)
    lines, maps = [], {}
    for members in source.raw_samples():
        record = decode_member("json", members["json"])
        image = next(members[name] for name in members if name.startswith("image."))
        depth_path = depth_path_for(record["image_path"])
        depth, maps[depth_path] = fill_holes(members["depth.png"], holes)
        _write_once(safe_join(root, record["image_path"]), image)
        _write_once(safe_join(root, depth_path), depth)
        lines.append(
            {
                "question": record["question"],
                "rationale": record["rationale"],
                "answer": record["answer"],
                "image_path": record["image_path"],
                "depth_path": depth_path,
            }
        )
    write_bytes_atomic(root / "ssr-cot.jsonl", "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode())
    write_bytes_atomic(root / SIDECAR, _sidecar(source, holes, maps))
    return len(lines)
