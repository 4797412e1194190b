"""Image corruptions of KITTI-C, NYUDepth2-C and ImageNet-C: faithful, seeded per call, fast.

from corruptions import corrupt, names, category
out = corrupt(image, "glass_blur", severity=3, seed=1234)
"""

from corruptions import blur, digital, noise, weather  # noqa: F401  (registration)
from corruptions.registry import REGISTRY, Corruption, category, corrupt, get, names, parse_severities

__all__ = ["REGISTRY", "Corruption", "category", "corrupt", "get", "names", "parse_severities"]
