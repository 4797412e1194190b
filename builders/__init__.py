"""Dataset builders, one module per family; importing the package registers them."""

from builders import corruption_sets, scenes, vqa_knowledge  # noqa: F401
