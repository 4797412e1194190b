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
