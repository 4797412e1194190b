"""publish: the dry run lists every file and the card; a broken release is refused; no token leaks."""

import shutil

from click.testing import CliRunner

from dataengine.cli import cli

TOKEN = "hf_dataengineTestTokenNeverToBeShown123"


def test_dry_run_lists_every_file_and_the_card(tmp_path, tiny_release, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    release = tmp_path / "r"
    shutil.copytree(tiny_release, release)
    result = CliRunner().invoke(cli, ["publish", str(release), "--repo-id", "org/tiny", "--dry-run"])
    assert result.exit_code == 0, result.output
    files = sorted(p.relative_to(release).as_posix() for p in release.rglob("*") if p.is_file())
    for name in files:
        assert name in result.output
    assert "dry run: nothing uploaded" in result.output and "configs:" in result.output
    assert TOKEN not in result.output
    assert all(TOKEN.encode() not in p.read_bytes() for p in release.rglob("*") if p.is_file())


def test_a_release_that_fails_verify_is_refused(tmp_path, tiny_release):
    release = tmp_path / "r"
    shutil.copytree(tiny_release, release)
    (release / "train" / "tiny-000003.tar").unlink()
    result = CliRunner().invoke(cli, ["publish", str(release), "--repo-id", "org/tiny", "--dry-run"])
    assert result.exit_code == 1 and "fails verify" in result.output and "tiny-000003.tar: missing shard" in result.output


def test_repo_id_must_name_owner_and_dataset(tiny_release):
    result = CliRunner().invoke(cli, ["publish", str(tiny_release), "--repo-id", "tiny", "--dry-run"])
    assert result.exit_code == 1 and "<user or org>/<name>" in result.output


def _publish(release, tmp_path, env):
    """`dataengine publish` in a fresh process: huggingface_hub reads HF_HOME and HF_ENDPOINT at import."""
    import os
    import subprocess
    import sys

    environment = {key: value for key, value in os.environ.items() if key != "HF_TOKEN"}
    environment.update({"HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "0", **env})
    command = [sys.executable, "-m", "dataengine.cli", "publish", str(release), "--repo-id", "org/tiny"]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=environment)


def test_publish_without_a_token_says_so_first(tmp_path, tiny_release):
    release = tmp_path / "r"
    shutil.copytree(tiny_release, release)
    (release / "train" / "tiny-000003.tar").unlink()  # would fail verify: the token is checked before that
    card = (release / "README.md").read_bytes()
    result = _publish(release, tmp_path, {})
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == "error: publish needs a Hugging Face token: set HF_TOKEN or run `hf auth login` (nothing was uploaded)\n"
    assert (release / "README.md").read_bytes() == card


def test_publish_without_network_is_one_line(tmp_path, tiny_release):
    release = tmp_path / "r"
    shutil.copytree(tiny_release, release)
    result = _publish(release, tmp_path, {"HF_TOKEN": TOKEN, "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: cannot reach the Hugging Face Hub (") and "check the network and rerun" in result.stderr
    assert TOKEN not in result.stderr + result.stdout


def test_the_published_card_names_the_repo(tmp_path, tiny_release, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    before = {path: path.stat().st_mtime_ns for path in tiny_release.rglob("*") if path.is_file()}
    result = CliRunner().invoke(cli, ["publish", str(tiny_release), "--repo-id", "org/tiny", "--revision", "v1", "--dry-run"])
    assert result.exit_code == 0, result.output
    card = result.output.split("--- README.md (dataset card, as it will be uploaded) ---")[1]
    assert "<release dir>" not in card
    assert 'dataengine.load("hf://datasets/org/tiny@v1", split="train", batch_size=8)' in card
    assert 'datasets.load_dataset("org/tiny", split="train")' in card
    assert "https://huggingface.co/datasets/org/tiny/resolve/v1/train/tiny-{000000..000004}.tar" in card
    assert "<release dir>" in (tiny_release / "README.md").read_text()  # a dry run writes nothing
    assert {path: path.stat().st_mtime_ns for path in tiny_release.rglob("*") if path.is_file()} == before


def test_an_upload_that_fails_leaves_the_card_naming_the_folder(tmp_path, tiny_release, monkeypatch):
    """publish rewrites the card to name the repo just before the upload; nothing was published if
    the upload fails, so the local card must go back to what it was."""
    import dataengine.cli
    import dataengine.publish.hub

    release = tmp_path / "r"
    shutil.copytree(tiny_release, release)
    card = (release / "README.md").read_bytes()

    def unreachable(*args, **kwargs):
        raise ConnectionError("connection refused")

    monkeypatch.setattr(dataengine.cli, "_check_hub_access", lambda: None)
    monkeypatch.setattr(dataengine.publish.hub, "publish", unreachable)
    result = CliRunner().invoke(cli, ["publish", str(release), "--repo-id", "org/tiny"])
    assert result.exit_code == 1 and "cannot reach the Hugging Face Hub (connection refused)" in result.output
    assert (release / "README.md").read_bytes() == card
