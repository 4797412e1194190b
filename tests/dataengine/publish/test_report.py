"""report.html: figures for each kind of release, and a real browser renders it."""

import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dataengine.cli import cli

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def make_report(tmp_path, release):
    copy = tmp_path / "r"
    shutil.copytree(release, copy)
    result = CliRunner().invoke(cli, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    return copy


def test_scenes_report_has_its_figures(tmp_path, tiny_release):
    release = make_report(tmp_path, tiny_release)
    html = (release / "report.html").read_text()
    for figure in ("gallery.png", "depth_histogram.png", "splits.png"):
        assert f'src="report/{figure}"' in html
        image = np.asarray(Image.open(release / "report" / figure))
        assert image.std() > 5  # not a blank canvas
    assert "rejects.png" not in html  # nothing was rejected


def test_report_renders_in_headless_chromium(tmp_path, tiny_release):
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no Chromium on this machine (.ci/run installs Debian's chromium where it can)")
    release = make_report(tmp_path, tiny_release)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1200,1600",
            f"--screenshot={shot}",
            (release / "report.html").as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (1600, 1200)
    assert (pixels < 200).mean() > 0.05  # text and figures drew something on the white page
