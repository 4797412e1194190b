"""SSR-CoT-style spatial rationales: depth, back-projected objects, measured facts, checked rationales."""

from dataengine.core.plugins import DemoStep, Family

FAMILY = Family(
    name="ssr",
    description="SSR-CoT spatial rationales over rendered scenes or real sources (Visual-CoT, VoCoT, LLaVA-CoT)",
    builder_modules=("builders.ssr.scenes", "builders.ssr.real"),
    exporters={"ssr-cot": "builders.ssr.export:export_ssr_cot"},
    demo=(
        DemoStep(
            order=2,
            catalog="demo-ssr",
            suffix="-ssr",
            hints=(
                "spatial rationales:  python -c \"import datasets; r = datasets.load_dataset('{release}', split='train')[0]['json']; "
                "print(r['question'], r['rationale'], r['answer'], sep='\\n')\"",
            ),
        ),
        DemoStep(
            order=3,
            catalog="demo-ssr-real",
            suffix="-ssr-real",
            sources="builders.fixtures:write_ssr_sources",
            sources_dir="ssr",
            env="DEMO_SSR_ROOT",
            hints=(
                "SSR-CoT layout:  dataengine export ssr-cot {release} {out}-ssr-cot",
                "what was rejected and why:  cat {release}/rejects.jsonl",
            ),
        ),
    ),
)
