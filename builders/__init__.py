"""Dataset families, one package each: builders, sources, export, scoring, card and report hooks,
commands. Each registers itself through the `dataengine.families` entry point (pyproject.toml)."""
