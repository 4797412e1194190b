"""A bad-input corpus: one kind of bad input per case, generated here from a clean official-format source.

Each build case starts from a small clean source (knowledge VQA, KITTI-C, NYUDepth2-C), injects one
defect (a format, encoding, type or path problem), builds, and checks the reject the defect must
give (its code and reason) or, for a whole unusable file, the one-line error; either way every input
is accounted for: inputs = samples written + rejects. Each shard case tampers with a finished release
and checks what `verify` finds and the error `load` raises.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

import dataengine
from builders.fixtures import OKVQA_CATEGORIES, write_kitti_tree, write_nyu_tree, write_vqa_sources
from builders.robustness.sets import frame_key
from dataengine.api import build
from dataengine.core.catalog import load_catalog
from dataengine.io.tar import ShardError
from dataengine.release.reader import ReleaseError
from dataengine.release.verify import verify_release
from dataengine.run.build import BuildError

pytestmark = pytest.mark.timeout(60)  # a source that blocks a reader (a FIFO) must fail the case, not hang the suite

OKVQA_IMAGES = (139, 285, 632)  # val2014
AOKVQA_IMAGES = (872, 885, 1000)  # val2017
OVEN_IMAGES = ("oven_04978218", "oven_05021931", "oven_01200345")


# ----------------------------------------------------------------------------------------------
# Clean sources, one defect each


@dataclass
class VqaSource:
    """OK-VQA, A-OKVQA and InfoSeek records (three clean ones each) over a copy of the images."""

    root: Path
    questions: list[Any] = field(default_factory=list)
    annotations: list[Any] = field(default_factory=list)
    aokvqa: list[Any] = field(default_factory=list)
    infoseek: list[bytes] = field(default_factory=list)  # JSONL lines as bytes (an encoding defect is bytes)
    files: dict[str, bytes] = field(default_factory=dict)  # a whole file replaced: name -> bytes

    @property
    def coco(self) -> Path:
        return self.root / "coco"

    def image(self, image_id: int) -> Path:
        return self.coco / "val2014" / f"COCO_val2014_{image_id:012d}.jpg"

    def inputs(self) -> int:
        return len(self.questions) + len(self.aokvqa) + sum(1 for line in self.infoseek if line.strip())

    def catalog(self) -> Path:
        names = {
            "okvqa_questions": "OpenEnded_mscoco_val2014_questions.json",
            "okvqa_annotations": "mscoco_val2014_annotations.json",
            "aokvqa": "aokvqa_v1p0_val.json",
            "infoseek": "infoseek_val.jsonl",
        }
        contents = {
            "okvqa_questions": json.dumps({"data_subtype": "val2014", "questions": self.questions}).encode(),
            "okvqa_annotations": json.dumps({"question_types": OKVQA_CATEGORIES, "annotations": self.annotations}).encode(),
            "aokvqa": json.dumps(self.aokvqa).encode(),
            "infoseek": b"".join(line + b"\n" for line in self.infoseek),
        }
        for source, name in names.items():
            (self.root / name).write_bytes(self.files.get(source, contents[source]))
        sources = {source: str(self.root / name) for source, name in names.items()}
        document = {
            "name": "vqa-corpus",
            "version": "0.1.0",
            "builder": "vqa_knowledge",
            "seed": 3,
            "params": {"cap_commonsense": None, "cap_world_knowledge": None},
            "sources": {**sources, "coco_root": str(self.coco), "oven_root": str(self.root / "oven")},
            "splits": {"eval": {}},
            "shards": {"max_samples": 4},
        }
        path = self.root / "vqa.yaml"
        path.write_text(yaml.safe_dump(document))
        return path


def clean_vqa(images: Path, root: Path) -> VqaSource:
    shutil.copytree(images / "coco", root / "coco")
    shutil.copytree(images / "oven", root / "oven")
    source = VqaSource(root)
    for n, image_id in enumerate(OKVQA_IMAGES):
        source.questions.append({"image_id": image_id, "question": f"What is thing {n} made of?", "question_id": 100 + n})
        answers = [{"answer_id": i + 1, "raw_answer": "wood", "answer_confidence": "yes", "answer": "wood"} for i in range(10)]
        source.annotations.append({"image_id": image_id, "question_id": 100 + n, "question_type": "three", "answers": answers})
    for n, image_id in enumerate(AOKVQA_IMAGES):
        source.aokvqa.append(
            {
                "split": "val",
                "image_id": image_id,
                "question_id": f"aok{n}",
                "question": f"Why is person {n} here?",
                "choices": ["to eat", "to work", "to sleep", "to play"],
                "correct_choice_idx": 1,
                "direct_answers": ["work"] * 10,
                "difficult_direct_answer": False,
                "rationales": ["One.", "Two.", "Three."],
            }
        )
    for n, image_id in enumerate(OVEN_IMAGES):
        record = {
            "data_id": f"infoseek_val_{n:08d}",
            "image_id": image_id,
            "question": f"What is fact {n} about this entity?",
            "answer": ["260"],
            "answer_eval": [{"wikidata": 260.0, "range": [234.0, 286.0]}],
            "data_split": "val_unseen_question",
            "entity_id": f"Q{n}",
        }
        source.infoseek.append(json.dumps(record).encode())
    return source


def _infoseek(source: VqaSource, index: int, **changes: Any) -> str:
    record = json.loads(source.infoseek[index])
    record.update(changes)
    source.infoseek[index] = json.dumps(record).encode()
    return f"infoseek-{record['data_id']}"


def _okvqa(source: VqaSource, index: int, **changes: Any) -> str:
    source.questions[index].update(changes)
    return f"okvqa-{source.questions[index]['question_id']}"


def _aokvqa(source: VqaSource, index: int, **changes: Any) -> str:
    source.aokvqa[index].update(changes)
    return f"aokvqa-{source.aokvqa[index]['question_id']}"


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _fifo(path: Path) -> None:
    path.unlink(missing_ok=True)
    os.mkfifo(path)


def _mixed_up_annotation(source: VqaSource) -> str:
    source.annotations[1]["image_id"] = OKVQA_IMAGES[2]
    return "okvqa-101"


def _image_in_two_splits(source: VqaSource) -> str:
    image = source.coco / "val2017" / f"{AOKVQA_IMAGES[0]:012d}.jpg"
    shutil.copy(image, source.image(AOKVQA_IMAGES[0]))  # the same COCO id in val2014, so OK-VQA may ask about it
    source.annotations[2]["image_id"] = AOKVQA_IMAGES[0]
    return _okvqa(source, 2, image_id=AOKVQA_IMAGES[0])


def _vqa_image(change: Callable[[Path], None]) -> Callable[[VqaSource], str]:
    def inject(source: VqaSource) -> str:
        change(source.image(OKVQA_IMAGES[0]))
        return "okvqa-100"

    return inject


def _delete_annotation(source: VqaSource) -> str:
    del source.annotations[0]
    return "okvqa-100"


def _nine_answers(source: VqaSource) -> str:
    source.annotations[0]["answers"] = source.annotations[0]["answers"][:9]
    return "okvqa-100"


def _blank_answer(source: VqaSource) -> str:
    source.annotations[0]["answers"][4]["answer"] = ""
    return "okvqa-100"


def _unknown_code(source: VqaSource) -> str:
    source.annotations[0]["question_type"] = "eleven"
    return "okvqa-100"


def _not_an_object(source: VqaSource) -> str:
    source.questions.append("What is this?")
    return "okvqa-record3"


def _duplicate_question(source: VqaSource) -> str:
    source.aokvqa.append({**source.aokvqa[0], "question_id": "aok9", "question": "  why is PERSON 0 here "})
    return "aokvqa-aok9"


def _infoseek_line(line: bytes) -> Callable[[VqaSource], str]:
    def inject(source: VqaSource) -> str:
        source.infoseek.insert(1, line)
        return "infoseek_val.jsonl:2"

    return inject


def _replace_file(name: str, data: bytes) -> Callable[[VqaSource], None]:
    def inject(source: VqaSource) -> None:
        source.files[name] = data

    return inject


@dataclass
class CorruptionSource:
    """A KITTI raw tree (split file, per-frame ground truth) or an NYU test tree, copied for one case."""

    root: Path
    builder: str
    lines: list[str] = field(default_factory=list)  # KITTI split lines
    gt_npz: np.ndarray | None = None  # KITTI ground truth as gt_depths.npz instead of per-frame PNGs

    def gt(self, index: int) -> Path:
        return self.root / "gt_depth" / self.lines[index]

    def image(self, index: int) -> Path:
        return self.root / self.lines[index]

    def key(self, frame: str) -> str:
        return f"pixelate-s1-{frame_key(frame)}"

    def inputs(self) -> int:
        if self.builder == "kitti_c":
            return len([line for line in self.lines if line.strip()])
        return len(list(self.root.rglob("rgb_*")))

    def catalog(self) -> Path:
        sources: dict[str, str] = {"root": str(self.root)}
        if self.builder == "kitti_c":
            split = self.root / "split.txt"
            split.write_text("\n".join(self.lines) + "\n")
            sources["split_file"] = str(split)
            if self.gt_npz is not None:
                np.savez(self.root / "gt.npz", data=self.gt_npz)
                sources["gt_depths"] = str(self.root / "gt.npz")
            else:
                sources["gt_root"] = str(self.root / "gt_depth")
        document = {
            "name": self.builder.replace("_", "-"),
            "version": "0.1.0",
            "builder": self.builder,
            "seed": 5,
            "params": {"corruptions": ["pixelate"], "severities": [1], "clean": False, "width": 96, "height": 48},
            "sources": sources,
            "splits": {"test": {}},
            "shards": {"max_samples": 3},
        }
        path = self.root.parent / f"{self.builder}.yaml"
        path.write_text(yaml.safe_dump(document))
        return path


def _kitti(change: Callable[[CorruptionSource], Any], index: int = 1) -> Callable[[CorruptionSource], str]:
    """Change frame `index` of the tree (its image, ground truth or split line); its key is rejected."""

    def inject(source: CorruptionSource) -> str:
        frame = source.lines[index]
        change(source)
        return source.key(frame)

    return inject


def _save(path: Path, array: np.ndarray, **options: Any) -> None:
    Image.fromarray(array).save(path, **options)


def _exif_rotated(path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"))
    path.unlink()
    _save(path, rgb, format="JPEG" if path.suffix == ".jpg" else "PNG", exif=exif)


def _gt_codes(source: CorruptionSource, index: int) -> np.ndarray:
    return np.asarray(Image.open(source.gt(index)))


def _split_line(line: str, expected_key: str | None = None) -> Callable[[CorruptionSource], str]:
    def inject(source: CorruptionSource) -> str:
        source.lines.insert(2, line)
        return source.key(expected_key or line)

    return inject


def _duplicate_line(source: CorruptionSource) -> str:
    source.lines.append(source.lines[0])
    return source.key(source.lines[0])


def _npz_nan(source: CorruptionSource) -> str:
    with np.load(source.root / "gt_depths.npz") as archive:
        data = archive["data"].copy()
    data[1, 10, 10] = np.nan
    source.gt_npz = data
    return source.key(source.lines[1])


def _npz_short(source: CorruptionSource) -> None:
    with np.load(source.root / "gt_depths.npz") as archive:
        source.gt_npz = archive["data"][:-1]


NYU_BEDROOM = "official_splits/test/bedroom"
NYU_KITCHEN = "official_splits/test/kitchen"


def _nyu(change: Callable[[Path], Any], frame: str = f"{NYU_BEDROOM}/rgb_00045.jpg") -> Callable[[CorruptionSource], str]:
    """Change NYU frame `frame` (given its rgb path); its key is rejected."""

    def inject(source: CorruptionSource) -> str:
        change(source.root / frame)
        return source.key(frame)

    return inject


def _depth_of(rgb: Path) -> Path:
    return rgb.with_name(rgb.name.replace("rgb_", "sync_depth_")).with_suffix(".png")


def _nyu_depth(make: Callable[[np.ndarray], tuple[np.ndarray, dict[str, Any]]]) -> Callable[[Path], None]:
    def change(rgb: Path) -> None:
        depth = _depth_of(rgb)
        array, options = make(np.asarray(Image.open(depth)))
        depth.unlink()
        _save(depth, array, **options)

    return change


def _nyu_extra(name: str, write: Callable[[Path, Path], None], key: str) -> Callable[[CorruptionSource], str]:
    """Add a file `name` beside the bedroom frames (from its first frame); `key` is the reject's key."""

    def inject(source: CorruptionSource) -> str:
        folder = source.root / NYU_BEDROOM
        write(folder / "rgb_00045.jpg", folder / name)
        return key

    return inject


def _as_format(format: str) -> Callable[[Path, Path], None]:
    def write(original: Path, target: Path) -> None:
        with Image.open(original) as image:
            image.convert("RGB").save(target, format=format)

    return write


# ----------------------------------------------------------------------------------------------
# The corpus


@dataclass(frozen=True)
class Kind:
    """One kind of bad input: how to inject it, and the reject (code, reason) or one-line error it gives."""

    name: str
    family: str  # "vqa" | "kitti_c" | "nyu_c"
    inject: Callable[[Any], str | None]  # returns the key rejects.jsonl must name; None: the whole build refuses
    code: str  # the reject's code; "" for a one-line error
    reason: str  # a regular expression the reason (or the error) must match


def _v(name: str, inject: Callable[[VqaSource], str | None], code: str, reason: str) -> Kind:
    return Kind(name, "vqa", inject, code, reason)


def _k(name: str, inject: Callable[[CorruptionSource], str | None], code: str, reason: str) -> Kind:
    return Kind(name, "kitti_c", inject, code, reason)


def _n(name: str, inject: Callable[[CorruptionSource], str | None], code: str, reason: str) -> Kind:
    return Kind(name, "nyu_c", inject, code, reason)


LONG = 2**70
KINDS: list[Kind] = [
    # knowledge VQA: types
    _v("okvqa image_id is a string", lambda s: _okvqa(s, 0, image_id="abc"), "malformed", r'image_id is str "abc", expected an integer'),
    _v("okvqa image_id is a float", lambda s: _okvqa(s, 0, image_id=139.0), "malformed", r"image_id is float 139.0, expected an integer"),
    _v("okvqa image_id is a boolean", lambda s: _okvqa(s, 0, image_id=True), "malformed", r"image_id is bool true, expected an integer"),
    _v("okvqa image_id overflows int64", lambda s: _okvqa(s, 0, image_id=LONG), "malformed", rf"image_id is int {LONG}"),
    _v("okvqa question is an object", lambda s: _okvqa(s, 0, question={}), "malformed", r"question is dict \{\}, expected a string"),
    _v("okvqa record is not an object", _not_an_object, "malformed", r"a record is a JSON object, got str"),
    _v("aokvqa choices are numbers", lambda s: _aokvqa(s, 0, choices=[1, 2, 3, 4]), "malformed", r"choices is list .*a list of strings"),
    _v("aokvqa difficult flag is a string", lambda s: _aokvqa(s, 0, difficult_direct_answer="no"), "malformed", r"expected a boolean"),
    _v("infoseek question is a number", lambda s: _infoseek(s, 0, question=5), "malformed", r"question is int 5, expected a string"),
    # knowledge VQA: formats
    _v("okvqa question is blank", lambda s: _okvqa(s, 0, question="   "), "malformed", r"^question missing$"),
    _v("okvqa annotation has 9 answers", _nine_answers, "malformed", r"^expected 10 answers$"),
    _v("okvqa answer is an empty string", _blank_answer, "malformed", r"^answers hold empty strings$"),
    _v("okvqa unknown question_type code", _unknown_code, "malformed", r"^unknown question_type code$"),
    _v("okvqa question without annotation", _delete_annotation, "malformed", r"no annotation for this question"),
    _v("okvqa annotation of another image", _mixed_up_annotation, "malformed", r"annotation image_id differs"),
    _v("aokvqa 3 choices", lambda s: _aokvqa(s, 0, choices=["a", "b", "c"]), "malformed", r"^expected 4 choices$"),
    _v("aokvqa correct_choice_idx 5", lambda s: _aokvqa(s, 0, correct_choice_idx=5), "malformed", r"^correct_choice_idx not in 0\.\.3$"),
    _v("aokvqa no rationales", lambda s: _aokvqa(s, 0, rationales=[]), "malformed", r"^expected 3 rationales$"),
    _v("aokvqa train split record", lambda s: _aokvqa(s, 0, split="train"), "not_evaluation_subset", r"A-OKVQA split 'train' is not val"),
    _v("aokvqa same question, same image", _duplicate_question, "duplicate", r"same image and normalised question as aokvqa-aok0"),
    _v("okvqa image owned by another split", _image_in_two_splits, "image_in_other_split", r"image coco:872 already belongs"),
    _v("infoseek without answer_eval", lambda s: _infoseek(s, 0, answer_eval=None), "malformed", r"answer_eval missing or malformed"),
    _v(
        "infoseek range of one number",
        lambda s: _infoseek(s, 0, answer_eval=[{"range": [5.0]}]),
        "malformed",
        r"range must be \[low, high\]",
    ),
    _v(
        "infoseek range holds NaN",
        lambda s: _infoseek(s, 0, answer_eval=[{"range": [math.nan, 2.0]}]),
        "schema",
        r"Out of range float values are not JSON compliant",
    ),
    _v("infoseek train split record", lambda s: _infoseek(s, 0, data_split="train"), "not_evaluation_subset", r"InfoSeek split 'train'"),
    _v("infoseek truncated JSON line", _infoseek_line(b'{"data_id": "x", "ques'), "malformed", r"line 2 is not valid JSON"),
    _v("infoseek line is a JSON array", _infoseek_line(b"[1, 2]"), "malformed", r"line 2 is not valid JSON: not a JSON object"),
    _v("infoseek raw control character", _infoseek_line(b'{"data_id": "a\tb"}'), "malformed", r"line 2 is not valid JSON: Invalid control"),
    # knowledge VQA: encodings
    _v(
        "infoseek line not UTF-8",
        _infoseek_line('{"question": "caf\xe9"}'.encode("latin-1")),
        "malformed",
        r"line 2 is not valid JSON: .utf-8. codec can.t decode byte 0xe9",
    ),
    _v("okvqa questions file in UTF-16", _replace_file("okvqa_questions", '{"questions": []}'.encode("utf-16")), "", r"okvqa: cannot read"),
    _v("okvqa questions file not UTF-8", _replace_file("okvqa_questions", b'{"questions": [\xff]}'), "", r"okvqa: cannot read .*utf-8"),
    _v("aokvqa file is empty", _replace_file("aokvqa", b""), "", r"aokvqa: cannot read .*Expecting value"),
    _v("okvqa questions file is a list", _replace_file("okvqa_questions", b"[]"), "", r"must be a JSON object with a 'questions' list"),
    _v("aokvqa file is an object", _replace_file("aokvqa", b"{}"), "", r"aokvqa: .* must hold a JSON list of questions"),
    # knowledge VQA: paths and image files
    _v("aokvqa split climbs out", lambda s: _aokvqa(s, 0, split="../../x"), "malformed", r"^split missing or not a folder name$"),
    _v("infoseek image_id climbs out", lambda s: _infoseek(s, 0, image_id="../../secret"), "malformed", r"would leave the image root"),
    _v("okvqa image file missing", _vqa_image(Path.unlink), "error.FileNotFoundError", r"image not found: .*COCO_val2014_000000000139"),
    _v("okvqa image is not an image", _vqa_image(lambda p: p.write_bytes(b"GIF89a nope")), "error.OSError", r"unreadable image .*identify"),
    _v("okvqa image truncated", _vqa_image(_truncated), "error.OSError", r"unreadable image .*truncated"),
    _v(
        "okvqa image is a folder",
        _vqa_image(lambda p: (p.unlink(), p.mkdir())),
        "error.ValueError",
        r"image .*COCO_val2014_000000000139.jpg is a folder",
    ),
    _v("okvqa image is a FIFO", _vqa_image(_fifo), "error.ValueError", r"image .*COCO_val2014_000000000139.jpg is a FIFO"),
    # KITTI-C
    _k("kitti image is not a PNG", _kitti(lambda s: s.image(1).write_bytes(b"\x89PNG broken")), "error.UnidentifiedImageError", "identify"),
    _k("kitti image truncated", _kitti(lambda s: _truncated(s.image(1))), "error.OSError", r"truncated"),
    _k("kitti image EXIF-rotated", _kitti(lambda s: _exif_rotated(s.image(1))), "error.ValueError", r"has EXIF orientation 6"),
    _k("kitti image missing", _kitti(lambda s: s.image(1).unlink()), "error.FileNotFoundError", r"does not exist"),
    _k("kitti gt missing", _kitti(lambda s: s.gt(1).unlink()), "error.FileNotFoundError", r"No such file"),
    _k("kitti gt is a FIFO", _kitti(lambda s: _fifo(s.gt(1))), "error.ValueError", r"is a FIFO"),
    _k(
        "kitti gt at the wrong size",
        _kitti(lambda s: _save(s.gt(1), _gt_codes(s, 1)[:-4])),
        "error.ValueError",
        r"is 320x92, its image 320x96",
    ),
    _k(
        "kitti gt 8-bit",
        _kitti(lambda s: _save(s.gt(1), (_gt_codes(s, 1) // 256).astype(np.uint8))),
        "error.ValueError",
        r"8-bit greyscale",
    ),
    _k("kitti gt RGB", _kitti(lambda s: _save(s.gt(1), np.zeros((96, 320, 3), np.uint8))), "error.ValueError", r"8-bit RGB PNG"),
    _k(
        "kitti gt under 2 m", _kitti(lambda s: _save(s.gt(1), np.minimum(_gt_codes(s, 1), 255))), "error.ValueError", r"farthest .* 0.996 m"
    ),
    _k("kitti gt all zero", _kitti(lambda s: _save(s.gt(1), np.zeros((96, 320), np.uint16))), "error.ValueError", r"holds no measurement"),
    _k("kitti gt npz holds NaN", _npz_nan, "error.ValueError", r"holds NaN or infinite values"),
    _k("kitti gt npz shorter than the split", _npz_short, "", r"gt_depths holds 5 depth maps but the split has 6 lines"),
    _k(
        "kitti split line of a missing frame",
        _split_line("kitti_data/x/y/image_02/data/0000000001.png"),
        "error.FileNotFoundError",
        "exist",
    ),
    _k("kitti split line malformed", _split_line("one two three"), "error.ValueError", r"neither a relative image path nor"),
    _k("kitti split line climbs out", _split_line("../outside/secret.png"), "error.ValueError", r"would leave its root"),
    _k("kitti split line is absolute", _split_line("/etc/passwd"), "error.ValueError", r"'/etc/passwd' would leave its root"),
    _k("kitti split line twice", _duplicate_line, "duplicate_key", r"is also the key of"),
    # NYUDepth2-C
    _n("nyu depth 8-bit", _nyu(_nyu_depth(lambda mm: ((mm // 40).astype(np.uint8), {}))), "error.ValueError", r"8-bit greyscale PNG"),
    _n(
        "nyu depth palette", _nyu(_nyu_depth(lambda mm: ((mm // 40).astype(np.uint8), {"bits": 4}))), "error.ValueError", r"PNG; the source"
    ),
    _n(
        "nyu depth float TIFF",
        _nyu(_nyu_depth(lambda mm: (mm.astype(np.float32), {"format": "TIFF"}))),
        "error.ValueError",
        r"is not a PNG",
    ),
    _n("nyu depth in metres", _nyu(_nyu_depth(lambda mm: ((mm // 1000).astype(np.uint16), {}))), "error.ValueError", r"farthest"),
    _n("nyu depth missing", _nyu(lambda rgb: _depth_of(rgb).unlink()), "error.FileNotFoundError", r"no depth sync_depth_00045.png beside"),
    _n("nyu image not a JPEG", _nyu(lambda rgb: rgb.write_bytes(b"\xff\xd8\xff garbage")), "error.UnidentifiedImageError", r"identify"),
    _n("nyu image EXIF-rotated", _nyu(_exif_rotated), "error.ValueError", r"EXIF orientation 6"),
    _n(
        "nyu image is a BMP",
        _nyu_extra("rgb_00099.bmp", _as_format("BMP"), f"{NYU_BEDROOM}/rgb_00099".replace("/", "_")),
        "unsupported_image",
        "bmp",
    ),
    _n(
        "nyu image twice (jpg and png)",
        _nyu_extra("rgb_00045.png", _as_format("PNG"), "pixelate-s1-official_splits_test_bedroom_rgb_00045"),
        "duplicate_key",
        r"rgb_00045.jpg",
    ),
]


@pytest.fixture(scope="module")
def vqa_images(tmp_path_factory) -> Path:
    """COCO and OVEN images in their official layouts (the annotation files are written per case)."""
    root = tmp_path_factory.mktemp("vqa-images")
    write_vqa_sources(root)
    return root


@pytest.fixture(scope="module")
def kitti_tree(tmp_path_factory):
    return write_kitti_tree(tmp_path_factory.mktemp("kitti-corpus"), frames_per_drive=3, drives=2, width=320, height=96)


@pytest.fixture(scope="module")
def nyu_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("nyu-corpus") / "nyu"
    write_nyu_tree(root, frames=4, width=160, height=120)
    return root


def _source(kind: Kind, tmp_path: Path, request) -> Any:
    if kind.family == "vqa":
        return clean_vqa(request.getfixturevalue("vqa_images"), tmp_path / "src")
    if kind.family == "kitti_c":
        tree = request.getfixturevalue("kitti_tree")
        shutil.copytree(tree.root, tmp_path / "src")
        return CorruptionSource(tmp_path / "src", "kitti_c", list(tree.lines))
    shutil.copytree(request.getfixturevalue("nyu_tree"), tmp_path / "src")
    return CorruptionSource(tmp_path / "src", "nyu_c")


def _rejects(release: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in (release / "rejects.jsonl").read_text().splitlines()]


def test_every_clean_source_builds_without_a_reject(tmp_path, request):
    """The baseline each case changes: everything written, nothing rejected."""
    for family in ("vqa", "kitti_c", "nyu_c"):
        source = _source(Kind("clean", family, lambda s: None, "", ""), tmp_path / family, request)
        result = build(load_catalog(source.catalog()), tmp_path / family / "out", workers=0, progress=False)
        assert _rejects(tmp_path / family / "out") == [] and len(result) == source.inputs() > 0, family


@pytest.mark.parametrize("kind", KINDS, ids=[kind.name for kind in KINDS])
def test_each_bad_input_is_a_reject_with_its_reason_and_the_counts_reconcile(tmp_path, request, kind):
    source = _source(kind, tmp_path, request)
    key = kind.inject(source)
    catalog, out = source.catalog(), tmp_path / "out"
    if not kind.code:  # a file no record can be read from: one line, before anything is written
        with pytest.raises(BuildError) as refused:
            build(load_catalog(catalog), out, workers=0, progress=False)
        message = str(refused.value)
        assert re.search(kind.reason, message) and "\n" not in message, message
        assert not out.exists()
        return
    result = build(load_catalog(catalog), out, workers=0, progress=False)
    rejects = _rejects(out)
    mine = [r for r in rejects if r["key"] == key]
    assert len(mine) == 1, f"no single reject for {key}: {rejects}"
    assert mine[0]["code"] == kind.code and re.search(kind.reason, mine[0]["reason"]), mine[0]
    written = [s["__key__"] for split in result.splits for s in dataengine.load(out, split=split, decode=None)]
    assert written.count(key) == (kind.code == "duplicate_key")  # only the first of two items with one key is kept
    assert result.manifest.rejects_total == len(rejects)
    assert source.inputs() == len(written) + len(rejects), (len(written), rejects)  # every input written or rejected
    assert verify_release(out) == []


# ----------------------------------------------------------------------------------------------
# Tampered shards: what verify finds, what load raises


def _rewrite(shard: Path, members: list[tuple[str, bytes]]) -> None:
    shard.unlink()
    with tarfile.open(shard, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def _members(shard: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(shard) as archive:
        return [(info.name, archive.extractfile(info).read()) for info in archive]


def _flip(shard: Path) -> None:
    data = bytearray(shard.read_bytes())
    data[1024 + 600] ^= 0xFF  # inside the first member's data
    shard.write_bytes(bytes(data))


def _manifest(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def tamper(shard: Path) -> None:
        path = shard.parents[1] / "manifest.json"
        manifest = json.loads(path.read_text())
        change(manifest)
        path.write_text(json.dumps(manifest))

    return tamper


def _first_key(shard: Path) -> str:
    return _members(shard)[0][0].split(".", 1)[0]


@dataclass(frozen=True)
class Tamper:
    name: str
    tamper: Callable[[Path], None]  # given train/tiny-000001.tar of a copy of the release
    finding: str  # a regular expression one of verify's findings must match
    error: str | None  # a regular expression the error of loading the train split must match; None: only verify can tell


TAMPERS: list[Tamper] = [
    Tamper("shard byte flipped", _flip, r"sha256", None),  # same size, other bytes: load does not hash, verify does
    Tamper("shard truncated", lambda p: p.write_bytes(p.read_bytes()[:3000]), r"tiny-000001.tar", r"."),
    Tamper("shard missing", Path.unlink, r"tiny-000001.tar.*(missing|No such file)", r"No such file|missing"),
    Tamper(
        "shard is a symlink to /dev/zero", lambda p: (p.unlink(), p.symlink_to("/dev/zero")), r"not a regular file", r"not a regular file"
    ),
    Tamper("shard is a FIFO", _fifo, r"is a FIFO, not a shard", r"is a FIFO, not a shard"),
    Tamper("shard is a folder", lambda p: (p.unlink(), p.mkdir()), r"is a folder, not a shard", r"is a folder, not a shard"),
    Tamper("member leaves the archive", lambda p: _rewrite(p, [("../x.rgb.png", b"x"), *_members(p)]), r".", r"leaves the archive"),
    Tamper("member missing", lambda p: _rewrite(p, [m for m in _members(p) if not m[0].endswith(".mask.png")]), r".", r"is incomplete"),
    Tamper("member is a symlink", lambda p: _add_link(p), r".", r"not a regular file"),
    Tamper("key repeated from another shard", lambda p: _rekey(p), r".", r"appears twice"),
    Tamper(
        "manifest sample count edited",
        _manifest(lambda m: m["splits"]["train"]["shards"][1].update(num_samples=5)),
        r"5",
        r"manifest says 5",
    ),
    Tamper("manifest is 0 bytes", lambda p: (p.parents[1] / "manifest.json").write_bytes(b""), r"manifest.json", r"manifest"),
]


def _add_link(shard: Path) -> None:
    members = _members(shard)
    shard.unlink()
    with tarfile.open(shard, "w") as archive:
        link = tarfile.TarInfo(members[0][0].replace(".json", ".extra"))
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def _rekey(shard: Path) -> None:
    other = _first_key(shard.with_name("tiny-000000.tar"))
    mine = _first_key(shard)
    _rewrite(shard, [(name.replace(mine, other, 1), data) for name, data in _members(shard)])


@pytest.mark.parametrize("case", TAMPERS, ids=[t.name for t in TAMPERS])
def test_each_tampered_shard_is_a_verify_finding_and_a_load_error(tmp_path, tiny_release, case):
    release = tmp_path / "release"
    shutil.copytree(tiny_release, release)
    case.tamper(release / "train" / "tiny-000001.tar")
    findings = [str(problem) for problem in verify_release(release)]
    assert findings and any(re.search(case.finding, finding) for finding in findings), findings
    if case.error is None:
        return
    with pytest.raises((ShardError, ReleaseError, OSError, ValueError)) as failed:
        list(dataengine.load(release, split="train", decode=None))
    assert re.search(case.error, str(failed.value)) and "\n" not in str(failed.value).strip(), str(failed.value)


def test_the_corpus_holds_at_least_40_kinds():
    names = [kind.name for kind in KINDS] + [tamper.name for tamper in TAMPERS]
    assert len(names) == len(set(names)) and len(names) >= 40
