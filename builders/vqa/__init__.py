"""Knowledge-intensive VQA: OK-VQA, A-OKVQA and InfoSeek curated with polars, and their official scores."""

from dataengine.core.plugins import DemoStep, Family

FAMILY = Family(
    name="vqa",
    description="OK-VQA, A-OKVQA, InfoSeek curated into commonsense / world-knowledge / rationale splits",
    builder_modules=("builders.vqa.builder",),
    commands=("builders.vqa.commands:score_vqa",),
    demo=(
        DemoStep(
            order=1,
            catalog="demo-vqa",
            suffix="-vqa",
            sources="builders.fixtures:write_vqa_sources",
            sources_dir="vqa",
            env="DEMO_VQA_ROOT",
            hints=(
                "knowledge VQA:  python -c \"import datasets; print(datasets.load_dataset('{release}', split='commonsense')[0]['json'])\"",
                "check it:  dataengine verify {release}",
                "what was rejected and why:  cat {release}/rejects.jsonl",
            ),
        ),
    ),
)
