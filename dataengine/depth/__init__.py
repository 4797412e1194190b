"""Depth sources (ground truth, stereo, learned models) and the 3D geometry built on depth maps."""
