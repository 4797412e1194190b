import pytest

from builders.scenes.builder import ScenesBuilder
from dataengine.core.catalog import CatalogError, apply_override, load_catalog, parse_size
from tests.conftest import write_catalog


def test_valid_catalog_resolves_defaults(tmp_path):
    spec = load_catalog(write_catalog(tmp_path))
    assert spec.builder == "scenes"
    assert spec.params["hfov_deg"] == 70.0  # default filled from the builder's schema
    assert spec.shards.max_samples == 4 and spec.shards.max_bytes == 64_000_000
    assert len(spec.sha256) == 64


def test_unknown_builder_suggests_the_closest(tmp_path):
    with pytest.raises(CatalogError, match=r"builder: unknown builder 'scene'.*did you mean 'scenes'"):
        load_catalog(write_catalog(tmp_path, builder="scene"))


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    with pytest.raises(CatalogError, match=r"params\.widht: unknown key \(did you mean 'width'\?\)"):
        load_catalog(write_catalog(tmp_path, params={"widht": 100}))
    with pytest.raises(CatalogError, match=r"shard: unknown key \(did you mean 'shards'\?\)"):
        load_catalog(write_catalog(tmp_path, shard={"max_samples": 3}))


def test_wrong_type_names_the_key(tmp_path):
    with pytest.raises(CatalogError, match=r"params\.width: 'wide' is not of type 'integer'"):
        load_catalog(write_catalog(tmp_path, params={"width": "wide"}))
    with pytest.raises(CatalogError, match=r"seed: .* is not of type 'integer'"):
        load_catalog(write_catalog(tmp_path, seed="abc"))


def test_missing_required_key(tmp_path):
    path = write_catalog(tmp_path)
    text = "\n".join(line for line in path.read_text().splitlines() if not line.startswith("seed"))
    path.write_text(text)
    with pytest.raises(CatalogError, match="'seed' is a required property"):
        load_catalog(path)


def test_missing_source_path_fails_before_work(tmp_path):
    with pytest.raises(CatalogError, match=r"sources\.extra: path '.*nowhere' does not exist"):
        load_catalog(write_catalog(tmp_path, sources={"extra": str(tmp_path / "nowhere")}))


def test_env_expansion_in_sources(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("DATAENGINE_TEST_ROOT", str(tmp_path))
    spec = load_catalog(write_catalog(tmp_path, sources={"root": "${DATAENGINE_TEST_ROOT}/data"}))
    assert spec.sources["root"] == tmp_path / "data"
    monkeypatch.delenv("DATAENGINE_TEST_ROOT")
    with pytest.raises(CatalogError, match=r"sources\.root: environment variable \$\{DATAENGINE_TEST_ROOT\} is not set"):
        load_catalog(write_catalog(tmp_path, sources={"root": "${DATAENGINE_TEST_ROOT}/data"}))


def test_overrides_and_limit_change_the_spec_and_its_hash(tmp_path):
    path = write_catalog(tmp_path)
    base = load_catalog(path)
    changed = load_catalog(path, overrides=["params.width=128", "splits.train.num_samples=3"], limit=2)
    assert changed.params["width"] == 128 and isinstance(changed.params["width"], int)
    assert changed.splits["train"]["num_samples"] == 3
    assert changed.limit == 2 and changed.overrides == ("params.width=128", "splits.train.num_samples=3")
    assert changed.sha256 != base.sha256
    assert load_catalog(path).sha256 == base.sha256


def test_override_errors():
    with pytest.raises(CatalogError, match="expected dotted.key=value"):
        apply_override({}, "params.width")
    with pytest.raises(CatalogError, match="'name' holds str, not a mapping"):
        apply_override({"name": "x"}, "name.first=1")


def test_bad_yaml_and_non_mapping(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(CatalogError, match="not valid YAML"):
        load_catalog(path)
    path.write_text("- a\n- b\n")
    with pytest.raises(CatalogError, match="a catalog is a YAML mapping"):
        load_catalog(path)


def test_yaml_is_safe_loaded(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(CatalogError, match="not valid YAML"):
        load_catalog(path)


@pytest.mark.parametrize("text,expected", [(4096, 4096), ("500MB", 500_000_000), ("1 GiB", 2**30), ("2.5GB", 2_500_000_000)])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["lots", "12", "1PB"])
def test_parse_size_rejects(text):
    with pytest.raises(CatalogError):
        parse_size(text)


def test_limit_must_be_positive(tmp_path):
    with pytest.raises(CatalogError, match="--limit 0"):
        load_catalog(write_catalog(tmp_path), limit=0)


def test_shipped_catalogs_are_valid(tmp_path, monkeypatch, tiny_release):
    """Every shipped catalog loads once its sources exist (generated here in the real layouts)."""
    from builders.fixtures import write_kitti_tree, write_nyu_tree, write_ssr_sources, write_vqa_sources
    from dataengine.core.resources import data_dir

    kitti = write_kitti_tree(tmp_path / "kitti", frames_per_drive=1, drives=1, width=320, height=96)
    write_nyu_tree(tmp_path / "nyu", frames=1, width=64, height=48)
    vqa = write_vqa_sources(tmp_path / "vqa")
    write_ssr_sources(tmp_path / "ssr")
    variables = {
        "KITTI_ROOT": kitti.root,
        "KITTI_SPLIT_FILE": kitti.split_file,
        "KITTI_GT_ROOT": kitti.gt_root,
        "NYU_ROOT": tmp_path / "nyu",
        "SCENES_RELEASE": tiny_release,
        "VQA_ROOT": tmp_path / "vqa",
        "COCO_ROOT": vqa.coco_root,
        "OVEN_ROOT": vqa.oven_root,
        "DEMO_VQA_ROOT": tmp_path / "vqa",
        "SSR_ROOT": tmp_path / "ssr",
        "DEMO_SSR_ROOT": tmp_path / "ssr",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, str(value))
    for path in sorted(data_dir("catalogs").glob("*.yaml")):
        assert load_catalog(path).name == path.stem


def test_a_set_mistake_is_reported_as_a_set_error(tmp_path):
    path = write_catalog(tmp_path)
    with pytest.raises(CatalogError) as raised:
        load_catalog(path, overrides=["params.widht=64"])
    assert str(raised.value) == (
        "--set 'params.widht=64': params.widht: unknown key (did you mean 'width'?); allowed here: "
        + ", ".join(ScenesBuilder.params_schema["properties"])
    )
    with pytest.raises(CatalogError, match=r"^--set 'parms.width=3': parms: unknown key \(did you mean 'params'\?\)"):
        load_catalog(path, overrides=["parms.width=3"])
    with pytest.raises(CatalogError, match=r"^--set 'builder=scens': builder: unknown builder 'scens' \(did you mean 'scenes'\?\)"):
        load_catalog(path, overrides=["builder=scens"])
    with pytest.raises(CatalogError, match=r"^--set 'sources.root=/no/such/dir': sources.root: path '/no/such/dir' does not exist"):
        load_catalog(path, overrides=["sources.root=/no/such/dir"])


def test_mistakes_in_the_file_and_in_set_are_told_apart(tmp_path):
    path = write_catalog(tmp_path, params={"heigth": 5})
    with pytest.raises(CatalogError) as raised:
        load_catalog(path, overrides=["params.width=wide"])
    first, second, third = str(raised.value).splitlines()
    assert first == "--set 'params.width=wide': params.width: 'wide' is not of type 'integer'"
    assert second == f"{path}: invalid catalog" and third.startswith("  params.heigth: unknown key (did you mean 'height'?)")


def test_shipped_catalog_names_get_suggestions():
    from dataengine.core.resources import resolve_catalog

    with pytest.raises(FileNotFoundError, match=r"catalog 'kiti-c' not found \(did you mean 'kitti-c'\?\); give a path or one of"):
        resolve_catalog("kiti-c")
    with pytest.raises(FileNotFoundError, match=r"catalog file 'some/where.yaml' not found; give an existing path"):
        resolve_catalog("some/where.yaml")
    assert resolve_catalog("kitti-c").name == "kitti-c.yaml"


def test_an_alias_bomb_is_refused_in_one_line_without_expanding_it(tmp_path):
    lines = ["  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("x:\n" + "\n".join(lines) + "\nname: *a8\n")  # 9**9 values; jsonschema's repr of them never ends
    with pytest.raises(CatalogError, match=r"more than 100000 values once YAML aliases are expanded .*write a smaller catalog") as info:
        load_catalog(path)
    assert "\n" not in str(info.value)


def test_a_self_referring_alias_is_refused(tmp_path):
    path = write_catalog(tmp_path)
    path.write_text(path.read_text() + "loop: &loop [1, *loop]\n")
    with pytest.raises(CatalogError, match=r"alias refers to a value that contains it; write the value out"):
        load_catalog(path)


def test_deep_nesting_is_one_line(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("name: " + "[" * 20_000 + "]" * 20_000 + "\n")
    with pytest.raises(CatalogError, match=r"deep\.yaml: values nest too deeply to read; .*simplify it") as info:
        load_catalog(path)
    assert "\n" not in str(info.value)
    path.write_text("name: " + "[" * 100 + "]" * 100 + "\n")  # readable, but no catalog nests that deep
    with pytest.raises(CatalogError, match=r"values nest deeper than 64 levels"):
        load_catalog(path)


def test_a_catalog_that_is_not_utf8_names_the_file_and_the_byte(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes("description: caf\xe9\n".encode("latin-1"))
    with pytest.raises(CatalogError, match=r"latin\.yaml: not UTF-8 text \(byte 0xe9 at offset 16: .*\); save the catalog as UTF-8"):
        load_catalog(path)
