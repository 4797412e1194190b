"""Procedural 3D scenes with exact depth, instance masks and 3D boxes (the offline demo's family)."""

from dataengine.core.plugins import DemoStep, Family

FAMILY = Family(
    name="scenes",
    description="procedural 3D scenes: RGB, exact depth, instance masks, 3D boxes",
    builder_modules=("builders.scenes.builder",),
    demo=(
        DemoStep(
            order=0,
            catalog="demo",
            hints=(
                "load it:  python -c \"import dataengine; s = next(iter(dataengine.load('{release}', split='train'))); print(s.keys())\"",
                "          python -c \"import datasets; print(datasets.load_dataset('{release}'))\"",
                "check it:  dataengine verify {release}",
                "look inside:  dataengine inspect {release}/train/demo-000000.tar",
            ),
        ),
    ),
)
