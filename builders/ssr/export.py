"""`dataengine export ssr-cot`: an SSR-CoT release in the layout SSR-CoT's own code reads."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from dataengine.core.fields import decode_member
from dataengine.io.atomic import write_bytes_atomic
from dataengine.io.paths import safe_join
from dataengine.release.reader import Release


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
    source, root = Release.open(release), Path(out)
    if source.manifest.sample_kind != "ssr_cot":
        raise ValueError(f"{release} is a '{source.manifest.sample_kind}' release; this export needs an SSR-CoT release (ssr_cot)")
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for members in source.raw_samples():
        record = decode_member("json", members["json"])
        image = next(members[name] for name in members if name.startswith("image."))
        depth_path = depth_path_for(record["image_path"])
        _write_once(safe_join(root, record["image_path"]), image)
        _write_once(safe_join(root, depth_path), members["depth.png"])
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
    return len(lines)
