"""`dataengine export`: write a release in the folder layout that existing evaluation code reads."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from dataengine.atomic import write_bytes_atomic
from dataengine.fields import decode_member
from dataengine.loading import read_manifest
from dataengine.shards import iter_samples


def safe_join(root: Path, relative: str) -> Path:
    """`root / relative`, refusing absolute paths and `..` that would leave `root`."""
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ValueError(f"path {relative!r} from the release would leave {root}; refusing to write it")
    return target


def export_corruption_set(release: str | Path, out: str | Path, top: str = "kitti_c") -> int:
    """`<out>/<top>/<corruption>/<severity>/<frame>` and `<out>/<top>/clean/<frame>`: the published
    KITTI-C layout (frames keep their `kitti_data/<date>/<drive>/image_02/data/...` paths). PNG bytes
    are copied from the shards unchanged. Returns the number of files written."""
    release, root = Path(release), Path(out) / top
    manifest = read_manifest(release)
    if manifest.get("sample_kind") != "depth_c":
        raise ValueError(f"{release} is a '{manifest.get('sample_kind')}' release; this export needs a corruption set (depth_c)")
    written = 0
    for entry in manifest["splits"].values():
        for shard in entry["shards"]:
            for _, members in iter_samples(release / shard["path"]):
                record = decode_member("json", members["json"])
                folder = "clean" if record["corruption"] == "clean" else f"{record['corruption']}/{record['severity']}"
                target = safe_join(root, f"{folder}/{record['frame']}")
                if target.suffix.lower() != ".png":
                    target = target.with_suffix(".png")
                write_bytes_atomic(target, members["rgb.png"])
                written += 1
    return written


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
            raise ValueError(f"{target} exists with different content; two samples map to one path")
        return False
    write_bytes_atomic(target, data)
    return True


def export_ssr_cot(release: str | Path, out: str | Path) -> int:
    """`<out>/ssr-cot.jsonl` (exactly question, rationale, answer, image_path, depth_path per line)
    with each image at `<out>/<image_path>` and its depth (uint16 mm PNG, clipped, never wrapped) at
    `<out>/<folder>_d/<rest>.png`, the layout SSR-CoT's code reads. Returns the number of records."""
    release, root = Path(release), Path(out)
    manifest = read_manifest(release)
    if manifest.get("sample_kind") != "ssr_cot":
        raise ValueError(f"{release} is a '{manifest.get('sample_kind')}' release; this export needs an SSR-CoT release (ssr_cot)")
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for entry in manifest["splits"].values():
        for shard in entry["shards"]:
            for _, members in iter_samples(release / shard["path"]):
                record = decode_member("json", members["json"])
                image = next(members[name] for name in members if name.startswith("image."))
                depth_path = depth_path_for(record["image_path"])
                _write_once(safe_join(root, record["image_path"]), image)
                _write_once(safe_join(root, depth_path), members["depth.png"])
                lines.append({"question": record["question"], "rationale": record["rationale"], "answer": record["answer"],
                              "image_path": record["image_path"], "depth_path": depth_path})
    write_bytes_atomic(root / "ssr-cot.jsonl", "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode())
    return len(lines)


EXPORTERS: dict[str, Callable[[str | Path, str | Path], int]] = {
    "kitti-c": export_corruption_set,
    "nyu-c": lambda release, out: export_corruption_set(release, out, top="nyu_c"),
    "ssr-cot": export_ssr_cot,
}
