"""Depth sources and the depth codec."""

from dataengine.depth.codec import MAX_DEPTH_M, decode_depth_png, encode_depth_png

__all__ = ["MAX_DEPTH_M", "decode_depth_png", "encode_depth_png"]
