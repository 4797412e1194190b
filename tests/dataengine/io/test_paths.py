"""Paths from data stay inside their root."""

from pathlib import PurePosixPath

import pytest

from dataengine.io.paths import safe_relative


@pytest.mark.parametrize("relative", ["../outside/secret", "a/../../b", "/etc/passwd", "..\\..\\x", "", "a/.."])
def test_safe_relative_refuses_paths_that_leave_their_root(relative):
    with pytest.raises(ValueError, match="would leave its root"):
        safe_relative(relative, "image")


def test_safe_relative_keeps_paths_inside():
    assert safe_relative("kitti_data/2011_09_26/x.png") == PurePosixPath("kitti_data/2011_09_26/x.png")
    assert safe_relative("a/./b..c.png") == PurePosixPath("a/b..c.png")
