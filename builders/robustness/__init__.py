"""Depth robustness sets (KITTI-C, NYUDepth2-C, the corruption set of any release) and their scores."""

from dataengine.core.plugins import Family

FAMILY = Family(
    name="robustness",
    description="KITTI-C / NYUDepth2-C: 18 corruptions x 5 severities over (image, depth), DEE, mCE, mRR",
    builder_modules=("builders.robustness.sets",),
    commands=(
        "builders.robustness.commands:corrupt_command",
        "builders.robustness.commands:gallery_command",
        "builders.robustness.commands:score_depth",
    ),
    exporters={"kitti-c": "builders.robustness.export:export_kitti_c", "nyu-c": "builders.robustness.export:export_nyu_c"},
)
