import json

from click.testing import CliRunner

from dataengine.cli import cli
from tests.conftest import write_catalog


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_help_explains_each_command():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("build", "demo", "verify", "inspect", "builders"):
        assert command in result.output
    assert "--set" in run("build", "--help").output


def test_build_with_limit_and_set_records_both(tmp_path):
    catalog = write_catalog(tmp_path)
    out = tmp_path / "trial"
    result = run("build", str(catalog), "--out", str(out), "--limit", "3", "--set", "params.width=64", "--workers", "1", "--no-progress")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["limit"] == 3 and manifest["overrides"] == ["params.width=64"]
    assert manifest["catalog"]["params"]["width"] == 64
    assert {s: e["num_samples"] for s, e in manifest["splits"].items()} == {"train": 3, "validation": 3}
    assert run("verify", str(out)).exit_code == 0
    inspected = run("inspect", str(out / "train" / "tiny-000000.tar"))
    assert "scene-train-0000000" in inspected.output and "depth.png" in inspected.output and "float32 (72, 64)" in inspected.output


def test_catalog_errors_exit_2_before_work(tmp_path):
    result = CliRunner().invoke(cli, ["build", str(write_catalog(tmp_path, params={"widht": 5})), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "params.widht: unknown key (did you mean 'width'?)" in result.output
    assert not (tmp_path / "x").exists()


def test_bad_arguments_fail_fast(tmp_path):
    catalog = str(write_catalog(tmp_path))
    result = CliRunner().invoke(cli, ["build", catalog, "--workers", "-1"])
    assert result.exit_code == 2 and "--workers -1: give 0 (run in this process) or more" in result.output
    result = CliRunner().invoke(cli, ["build", catalog, "--workers", "2", "--scheduler", "tcp://h:8786"])
    assert result.exit_code == 2 and "exclude each other" in result.output
    result = CliRunner().invoke(cli, ["build", "no-such-catalog"])
    assert (
        result.exit_code == 2
        and "shipped catalogs: demo, demo-ssr, demo-ssr-real, demo-vqa, kitti-c, nyu-c, scenes, scenes-c, ssr-cot, ssr-cot-scenes, vqa-knowledge"
        in result.output
    )


def test_verify_exits_1_naming_problems(tmp_path, tiny_release):
    import shutil

    copy = tmp_path / "r"
    shutil.copytree(tiny_release, copy)
    (copy / "validation" / "tiny-000000.tar").unlink()
    result = CliRunner().invoke(cli, ["verify", str(copy)])
    assert result.exit_code == 1
    assert "FAIL validation/tiny-000000.tar: missing shard" in result.output


def test_inspect_refuses_garbage(tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    result = CliRunner().invoke(cli, ["inspect", str(junk)])
    assert result.exit_code == 1 and "not a readable shard" in result.output


def test_demo_builds_offline_and_says_how_to_load(tmp_path):
    out = tmp_path / "demo"
    result = run("demo", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "dataengine.load(" in result.output and f"dataengine verify {out}" in result.output
    assert run("verify", str(out)).exit_code == 0
    vqa = tmp_path / "demo-vqa"
    assert run("verify", str(vqa)).exit_code == 0
    assert json.loads((vqa / "manifest.json").read_text())["rejects"]["total"] > 0
    for part in ("demo-ssr", "demo-ssr-real"):
        assert run("verify", str(tmp_path / part)).exit_code == 0
    again = run("demo", "--out", str(out))
    assert again.output.count("already complete") == 4
