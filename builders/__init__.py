"""Dataset builders, one module per family; importing the package registers them."""

from builders import corruption_sets, scenes, ssr_cot, ssr_scenes, vqa_knowledge  # noqa: F401
