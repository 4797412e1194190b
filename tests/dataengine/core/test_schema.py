import datasets
import pytest

from dataengine.core.schema import SampleSchema, SchemaError, hf_feature_from_json_schema


def test_scene_schema_accepts_only_its_members():
    schema = SampleSchema.load("scene")
    with pytest.raises(SchemaError, match="member 'extra.bin' is not allowed"):
        schema.check("k", {"extra.bin": b"", "json": {}}, {})


def test_schema_errors_name_the_path():
    schema = SampleSchema.load("scene")
    members = {"rgb.png": b"", "depth.png": b"", "mask.png": b"", "json": b""}
    with pytest.raises(SchemaError, match=r"json: 'camera' is a required property"):
        schema.check("k", members, {"key": "k", "split": "train", "index": 0, "light": [0, 1, 0], "depth": {}, "objects": []})


def test_json_schema_to_features():
    node = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "count": {"type": "integer"},
            "score": {"type": ["number", "null"]},
            "ok": {"type": "boolean"},
            "box": {"type": "array", "minItems": 4, "maxItems": 4, "items": {"type": "number"}},
            "tags": {"type": "array", "items": {"type": "string"}},
            "kind": {"enum": ["a", "b"]},
            "ref": {"$ref": "#/$defs/v"},
        },
    }
    features = hf_feature_from_json_schema(node, {"v": {"type": "integer"}})
    assert features == {
        "name": datasets.Value("string"),
        "count": datasets.Value("int64"),
        "score": datasets.Value("float64"),
        "ok": datasets.Value("bool"),
        "box": datasets.List(datasets.Value("float64"), length=4),
        "tags": datasets.List(datasets.Value("string")),
        "kind": datasets.Value("string"),
        "ref": datasets.Value("int64"),
    }


def test_unmappable_schema_fails_clearly():
    with pytest.raises(ValueError, match="no datasets feature mapping"):
        hf_feature_from_json_schema({"anyOf": [{"type": "string"}]}, {})


def test_unknown_schema_name():
    with pytest.raises(FileNotFoundError, match="no sample schema 'nope'"):
        SampleSchema.load("nope")
