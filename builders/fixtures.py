"""Source trees in the real layouts of KITTI raw and NYU Depth v2, rendered by the scenes renderer.

For offline demos and tests: the same files, names and encodings the real datasets use, with
ground truth known exactly. KITTI: `kitti_data/<date>/<date>_drive_<NNNN>_sync/image_02/data/
<frame:010d>.png`, an Eigen-style split file, `gt_depths.npz` (`data`: N x H x W metres) and
per-frame 16-bit PNGs (metres x 256, 0 = no LiDAR return, sparse like a velodyne projection).
NYU (BTS / AdaBins test layout): `<scene>/rgb_<NNNNN>.jpg` and `<scene>/sync_depth_<NNNNN>.png`
(uint16 millimetres).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from builders.scenes.geometry import Camera, render, sample_layout, sample_light
from dataengine.core.rng import sample_rng
from dataengine.io.tar import ShardWriter
from dataengine.release.reader import Release

KITTI_FX = 721.5377
KITTI_DATE = "2011_09_26"


@dataclass(frozen=True)
class KittiTree:
    root: Path
    split_file: Path
    gt_depths: Path
    gt_root: Path
    lines: list[str]


def _scene(camera: Camera, hfov: float, seed: int, key: str, depth_range: tuple[float, float], count: int):
    rng = sample_rng(seed, key, "layout")
    shapes = sample_layout(rng, camera, hfov, count, depth_range)
    return render(camera, shapes, sample_light(sample_rng(seed, key, "light")))


def write_kitti_tree(
    root: str | Path,
    frames_per_drive: int = 3,
    drives: int = 2,
    width: int = 1242,
    height: int = 375,
    seed: int = 0,
    lidar_fraction: float = 0.06,
) -> KittiTree:
    """Render a small KITTI raw tree with an Eigen-style split file and ground truth."""
    root = Path(root)
    hfov = math.degrees(2 * math.atan(width / 2 / (KITTI_FX * width / 1242)))
    camera = Camera.from_fov(width, height, hfov, 1.65, 1.0)
    lines, depths = [], []
    gt_root = root / "gt_depth"
    for drive in range(drives):
        folder = f"kitti_data/{KITTI_DATE}/{KITTI_DATE}_drive_{drive + 2:04d}_sync/image_02/data"
        for index in range(frames_per_drive):
            relative = f"{folder}/{69 + 7 * index:010d}.png"
            rendering = _scene(camera, hfov, seed, relative, (5.0, 45.0), 6)
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rendering.rgb).save(root / relative)
            keep = sample_rng(seed, relative, "lidar").random(rendering.depth.shape) < lidar_fraction
            depth = np.where(keep & (rendering.depth < 80), rendering.depth, 0).astype(np.float32)
            depths.append(depth)
            (gt_root / relative).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.clip(np.rint(depth * 256), 0, 65535).astype(np.uint16)).save(gt_root / relative)
            lines.append(relative)
    split_file = root / "eigen_test_files.txt"
    split_file.write_text("\n".join(lines) + "\n")
    gt_depths = root / "gt_depths.npz"
    np.savez_compressed(gt_depths, data=np.stack(depths))
    return KittiTree(root, split_file, gt_depths, gt_root, lines)


def write_nyu_tree(root: str | Path, frames: int = 4, seed: int = 0, width: int = 640, height: int = 480) -> list[Path]:
    """Render NYU-style indoor pairs: `official_splits/test/<scene>/rgb_NNNNN.jpg` + `sync_depth_NNNNN.png`."""
    root = Path(root)
    camera = Camera.from_fov(width, height, 62.0, 1.2, 15.0)
    written = []
    for index in range(frames):
        scene = root / "official_splits" / "test" / ("bedroom" if index % 2 == 0 else "kitchen")
        scene.mkdir(parents=True, exist_ok=True)
        number = 45 + 2 * index
        rendering = _scene(camera, 62.0, seed, f"nyu-{number}", (1.5, 6.0), 4)
        Image.fromarray(rendering.rgb).save(scene / f"rgb_{number:05d}.jpg", quality=95)
        depth = np.where((rendering.depth > 0) & (rendering.depth < 10), rendering.depth, 0)
        Image.fromarray(np.rint(depth * 1000).astype(np.uint16)).save(scene / f"sync_depth_{number:05d}.png")
        written.append(scene / f"rgb_{number:05d}.jpg")
    return written


OKVQA_CATEGORIES = {
    "one": "Vehicles and Transportation",
    "two": "Brands, Companies and Products",
    "three": "Objects, Material and Clothing",
    "four": "Sports and Recreation",
    "five": "Cooking and Food",
    "six": "Geography, History, Language and Culture",
    "seven": "People and Everyday life",
    "eight": "Plants and Animals",
    "nine": "Science and Technology",
    "ten": "Weather and Climate",
    "other": "Other",
}


@dataclass(frozen=True)
class VqaSources:
    coco_root: Path
    oven_root: Path
    okvqa_questions: Path
    okvqa_annotations: Path
    aokvqa: Path
    infoseek: Path
    infoseek_qtype: Path
    infoseek_categories: Path


def _photos() -> list[np.ndarray]:
    from skimage import data

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.cat(), data.immunohistochemistry()]
    return [np.asarray(Image.fromarray(p).resize((320, 240))) for p in photos]


def write_vqa_sources(root: str | Path) -> VqaSources:
    """Official-format OK-VQA, A-OKVQA and InfoSeek files over real photographs, some records malformed.

    Planted problems: an OK-VQA annotation with 9 answers, an unknown category code, a question
    with no annotation, a question whose image file is missing; an A-OKVQA record with 3 choices
    and one with correct_choice_idx 5; an InfoSeek line that is not JSON and one without
    answer_eval; one OK-VQA / A-OKVQA pair asking the same question about the same image. Two
    A-OKVQA questions are flagged `difficult_direct_answer` (left out of the official direct-answer score).
    """
    root = Path(root)
    photos = _photos()
    coco, oven = root / "coco", root / "oven"
    (coco / "val2014").mkdir(parents=True, exist_ok=True)
    (coco / "val2017").mkdir(parents=True, exist_ok=True)
    oven.mkdir(parents=True, exist_ok=True)
    coco_ids = [139, 285, 632, 724, 776, 785]
    for image_id, photo in zip(coco_ids, photos):
        Image.fromarray(photo).save(coco / "val2014" / f"COCO_val2014_{image_id:012d}.jpg", quality=90)
    for image_id, photo in zip([872, 885, 1000, 1268], photos[2:]):
        Image.fromarray(photo).save(coco / "val2017" / f"{image_id:012d}.jpg", quality=90)
    Image.fromarray(photos[0]).save(coco / "val2017" / f"{785:012d}.jpg", quality=90)  # also used by OK-VQA
    oven_ids = [f"oven_{n:08d}" for n in (4978218, 5021931, 1200345, 9981003)]
    for image_id, photo in zip(oven_ids, photos[1:5]):
        Image.fromarray(photo).save(oven / f"{image_id}.jpg", quality=90)

    codes = list(OKVQA_CATEGORIES)
    questions, annotations = [], []
    for n in range(33):
        question_id = 2971475 + n * 10
        image_id = coco_ids[n % len(coco_ids)]
        code = codes[n % len(codes)]
        raw = (
            ["Two", "2", "two", "2", "bus", "bus", "2", "2", "the bus", "2"]
            if n % 3 == 0
            else [f"answer {n % 4}", f"answer {n % 4}", "dog", "dog", "a Dog", "a dog", "dogs", "dog", "cat", "cat"]
        )
        questions.append({"image_id": image_id, "question": f"What kind of thing number {n} is shown here?", "question_id": question_id})
        answers = [{"answer_id": i + 1, "raw_answer": a, "answer_confidence": "yes", "answer": a.lower()} for i, a in enumerate(raw)]
        annotations.append(
            {
                "image_id": image_id,
                "question_id": question_id,
                "question_type": code,
                "answer_type": "other",
                "confidence": 3,
                "answers": answers,
            }
        )
    annotations[3]["answers"] = annotations[3]["answers"][:9]
    annotations[4]["question_type"] = "eleven"
    annotations.pop(5)  # question 5 keeps no annotation
    questions.append({"image_id": 999999, "question": "What is missing from this picture?", "question_id": 3999990})
    answers = [{"answer_id": i + 1, "raw_answer": "nothing", "answer_confidence": "yes", "answer": "nothing"} for i in range(10)]
    annotations.append(
        {"image_id": 999999, "question_id": 3999990, "question_type": "other", "answer_type": "other", "confidence": 3, "answers": answers}
    )
    questions.append({"image_id": 785, "question": "Which space agency built this rocket?", "question_id": 3999991})
    answers = [{"answer_id": i + 1, "raw_answer": "nasa", "answer_confidence": "yes", "answer": "nasa"} for i in range(10)]
    annotations.append(
        {"image_id": 785, "question_id": 3999991, "question_type": "nine", "answer_type": "other", "confidence": 3, "answers": answers}
    )
    okvqa_q = root / "OpenEnded_mscoco_val2014_questions.json"
    okvqa_a = root / "mscoco_val2014_annotations.json"
    okvqa_q.write_text(
        json.dumps(
            {"info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "license": {}, "data_subtype": "val2014", "questions": questions}
        )
    )
    okvqa_a.write_text(
        json.dumps({"info": {}, "license": {}, "data_subtype": "val2014", "question_types": OKVQA_CATEGORIES, "annotations": annotations})
    )

    aokvqa = []
    for n, image_id in enumerate([872, 885, 1000, 1268, 872, 885, 1000, 1268, 872, 885, 1000, 1268]):
        aokvqa.append(
            {
                "split": "val",
                "image_id": image_id,
                "question_id": f"22jbM6gDxdaMaunuzgrsBB{n:02d}",
                "question": f"Why might someone be here, reason {n}?",
                "choices": ["to eat", "to work", "to sleep", "to play"],
                "correct_choice_idx": n % 4,
                "direct_answers": ["eat"] * 4 + ["work"] * 3 + ["food", "lunch", "eating"],
                "difficult_direct_answer": False,
                "rationales": ["A reason.", "Another reason.", "A third reason."],
            }
        )
    aokvqa.append(
        {
            "split": "val",
            "image_id": 785,
            "question_id": "dupOfOkvqa0000000000001",
            "question": "Which space agency built this rocket",
            "choices": ["nasa", "esa", "jaxa", "isro"],
            "correct_choice_idx": 0,
            "direct_answers": ["nasa"] * 10,
            "difficult_direct_answer": False,
            "rationales": ["It says NASA.", "US flag.", "Shuttle."],
        }
    )
    aokvqa[2]["choices"] = aokvqa[2]["choices"][:3]
    aokvqa[3]["correct_choice_idx"] = 5
    for difficult in (5, 9):
        aokvqa[difficult]["difficult_direct_answer"] = True
    aokvqa_path = root / "aokvqa_v1p0_val.json"
    aokvqa_path.write_text(json.dumps(aokvqa))

    lines, qtypes = [], []
    for n in range(20):
        data_id = f"infoseek_val_{68862 + n:08d}"
        split = "val_unseen_question" if n % 2 == 0 else "val_unseen_entity"
        if n % 3 == 0:
            answer, answer_eval, qtype = ["260"], [{"wikidata": 260.0, "range": [234.0, 286.0]}], "Numerical"
        elif n % 3 == 1:
            answer, answer_eval, qtype = ["1889"], ["1888", "1889", "1890"], "Time"
        else:
            answer, answer_eval, qtype = ["Eiffel Tower"], ["Eiffel Tower", "Tour Eiffel"], "String"
        lines.append(
            json.dumps(
                {
                    "data_id": data_id,
                    "image_id": oven_ids[n % 4],
                    "question": f"What is fact {n} about this entity?",
                    "answer": answer,
                    "answer_eval": answer_eval,
                    "data_split": split,
                    "entity_id": f"Q{243 + n % 4}",
                }
            )
        )
        qtypes.append(json.dumps({"data_id": data_id, "question_type": qtype}))
    lines[7] = lines[7][:-5]  # truncated JSON
    broken = json.loads(lines[8])
    del broken["answer_eval"]
    lines[8] = json.dumps(broken)
    infoseek = root / "infoseek_val.jsonl"
    infoseek.write_text("\n".join(lines) + "\n")
    qtype_path = root / "infoseek_val_qtype.jsonl"
    qtype_path.write_text("\n".join(qtypes) + "\n")
    categories = root / "infoseek_entity_categories.jsonl"
    categories.write_text(
        "\n".join(json.dumps({"entity_id": f"Q{243 + k}", "category": c}) for k, c in enumerate(["building", "animal", "food", "vehicle"]))
        + "\n"
    )
    return VqaSources(coco, oven, okvqa_q, okvqa_a, aokvqa_path, infoseek, qtype_path, categories)


# Middlebury 2014 Motorcycle calibration (full resolution); scikit-image ships a quarter-size copy.
MOTORCYCLE_CALIB = {"f": 3979.911, "cx0": 1244.772, "cx1": 1369.115, "cy": 1019.507, "doffs": 124.343, "baseline_mm": 193.001}


def write_ssr_sources(root: str | Path) -> Path:
    """SSR-CoT source files over real photographs, in the layouts the SSR sources use.

    `images/photos/*.jpg` (scikit-image's coffee, chelsea, astronaut); `images/middlebury/motorcycle/`
    with `im0.png`, `im1.png` and a Middlebury `calib.txt` (scaled to the quarter-size copy), plus its
    ground-truth depth in the SSR layout, `images/middlebury_d/motorcycle/im0.png` (uint16 mm);
    `viscot.json` (Visual-CoT), `vocot.json` (VoCoT-style grounded reasoning) and `llava_cot.jsonl`
    (LLaVA-CoT with a grounding step's `objects`). Planted problems: a missing image, a box outside
    its image, a record without its box turn, a JSONL line that is not JSON, a LLaVA-CoT answer
    without `<CONCLUSION>`, and a record whose objects are not on the stereo pair.
    """
    from skimage import data

    root = Path(root)
    images = root / "images"
    (images / "photos").mkdir(parents=True, exist_ok=True)
    for name in ("coffee", "chelsea", "astronaut"):
        Image.fromarray(getattr(data, name)()).save(images / "photos" / f"{name}.jpg", quality=92)
    left, right, disparity = data.stereo_motorcycle()
    moto = images / "middlebury" / "motorcycle"
    moto.mkdir(parents=True, exist_ok=True)
    Image.fromarray(left).save(moto / "im0.png")
    Image.fromarray(right).save(moto / "im1.png")
    c = {k: v / 4 if k not in ("doffs", "baseline_mm") else v for k, v in MOTORCYCLE_CALIB.items()}
    c["doffs"] = MOTORCYCLE_CALIB["doffs"] / 4
    (moto / "calib.txt").write_text(
        f"cam0=[{c['f']:.3f} 0 {c['cx0']:.3f}; 0 {c['f']:.3f} {c['cy']:.3f}; 0 0 1]\n"
        f"cam1=[{c['f']:.3f} 0 {c['cx1']:.3f}; 0 {c['f']:.3f} {c['cy']:.3f}; 0 0 1]\n"
        f"doffs={c['doffs']:.4f}\nbaseline={c['baseline_mm']}\nwidth={left.shape[1]}\nheight={left.shape[0]}\nndisp=70\n"
    )
    depth_m = np.where(np.isfinite(disparity), c["f"] * c["baseline_mm"] / 1000.0 / (disparity + c["doffs"]), 0.0)
    (images / "middlebury_d" / "motorcycle").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(np.rint(depth_m * 1000), 0, 65535).astype(np.uint16)).save(images / "middlebury_d" / "motorcycle" / "im0.png")

    viscot_prompt = " Please provide the bounding box coordinate of the region that can help you answer the question better."

    def viscot(qid: str, image: str, question: str, box: list[float], answer: str) -> dict:
        return {
            "question_id": qid,
            "image": [image],
            "dataset": "skimage",
            "conversations": [
                {"from": "human", "value": f"<image>\n{question}{viscot_prompt}"},
                {"from": "gpt", "value": json.dumps(box)},
                {"from": "human", "value": "<image>"},
                {"from": "gpt", "value": answer},
            ],
        }

    (root / "viscot.json").write_text(
        json.dumps(
            [
                viscot("coffee-1", "photos/coffee.jpg", "What is in the cup?", [0.283, 0.05, 0.7, 0.725], "Espresso."),
                viscot("chelsea-1", "photos/chelsea.jpg", "What animal is this?", [0.244, 0.1, 0.732, 0.967], "A cat."),
                viscot("moto-1", "middlebury/motorcycle/im0.png", "What brand is the motorcycle?", [0.4, 0.3, 0.65, 0.5], "Yamaha."),
                viscot("missing-1", "photos/missing.jpg", "What is this?", [0.1, 0.1, 0.5, 0.5], "Nothing."),
                viscot("outside-1", "photos/astronaut.jpg", "Who is this?", [0.5, 0.5, 1.4, 0.9], "An astronaut."),
                {
                    "question_id": "broken-1",
                    "image": ["photos/coffee.jpg"],
                    "conversations": [{"from": "human", "value": "What?"}, {"from": "gpt", "value": "A cup."}],
                },
            ],
            indent=1,
        )
    )
    (root / "vocot.json").write_text(
        json.dumps(
            [
                {
                    "id": "moto-wheels",
                    "image": "middlebury/motorcycle/im0.png",
                    "conversations": [
                        {"from": "human", "value": "<image>\nWhich wheel of the motorcycle is closer to the camera?"},
                        {
                            "from": "gpt",
                            "value": "The motorcycle has the front wheel [0.688, 0.58, 0.925, 0.9] and the rear wheel [0.162, 0.47, 0.385, 0.81]. "
                            "The headlight [0.682, 0.24, 0.762, 0.38] sits above the front wheel. Answer: The front wheel.",
                        },
                    ],
                },
                {
                    "id": "moto-tank",
                    "image": "middlebury/motorcycle/im0.png",
                    "conversations": [
                        {"from": "human", "value": "<image>\nIs the seat to the left of the fuel tank?"},
                        {"from": "gpt", "value": "The seat [0.2, 0.32, 0.48, 0.5] is behind the fuel tank [0.44, 0.32, 0.65, 0.48]."},
                    ],
                    "answer": "Yes.",
                },
            ],
            indent=1,
        )
    )
    lines = [
        {
            "id": "llava-moto",
            "image": "middlebury/motorcycle/im0.png",
            "conversations": [
                {"from": "human", "value": "<image>\nHow far is the engine from the front wheel?"},
                {
                    "from": "gpt",
                    "value": "<SUMMARY>I will locate the engine and the front wheel and compare them.</SUMMARY>\n\n<CAPTION>A red Yamaha motorcycle in a garage.</CAPTION>\n\n"
                    "<REASONING>The engine is in the middle of the frame, the front wheel at the right.</REASONING>\n\n<CONCLUSION>They are close to each other.</CONCLUSION>",
                },
            ],
            "objects": [{"name": "engine", "box": [330, 240, 480, 370]}, {"name": "front wheel", "box": [510, 290, 685, 450]}],
        },
        {
            "id": "llava-noconclusion",
            "image": "photos/coffee.jpg",
            "conversations": [{"from": "human", "value": "What is this?"}, {"from": "gpt", "value": "<REASONING>A cup.</REASONING>"}],
        },
    ]
    (root / "llava_cot.jsonl").write_text("\n".join(json.dumps(line) for line in lines[:1]) + "\n{not json\n" + json.dumps(lines[1]) + "\n")
    return root


def broken_copy(release: str | Path, out: str | Path, change: Callable[[str, dict[str, bytes], int], dict[str, bytes]]) -> Path:
    """A copy of `release` whose samples went through `change(split, members, index)`, with a manifest
    that matches its new shards: only the labels are wrong, not the files (controls for validate)."""
    release, out = Path(release), Path(out)
    shutil.copytree(release, out, ignore=shutil.ignore_patterns(".validate", "validation.json"))
    source = Release.open(release)
    manifest = json.loads((out / "manifest.json").read_text())
    for split in source.splits:
        samples = list(source.raw_samples(split))
        changed = [change(split, {k: v for k, v in s.items() if not k.startswith("__")}, i) for i, s in enumerate(samples)]
        position = 0
        for entry in manifest["splits"][split]["shards"]:
            writer = ShardWriter(out / entry["path"])
            for _ in range(entry["num_samples"]):
                writer.write(samples[position]["__key__"], changed[position])
                position += 1
            record = writer.close()
            entry["sha256"], entry["num_bytes"] = record.sha256, record.num_bytes
        manifest["splits"][split]["num_bytes"] = sum(e["num_bytes"] for e in manifest["splits"][split]["shards"])
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out
