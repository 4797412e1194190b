"""The README's examples are valid as written: every YAML block parses, every Python block compiles."""

import ast
import re
from pathlib import Path

import yaml

README = (Path(__file__).parents[1] / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_yaml_blocks_parse_and_the_catalog_example_keeps_its_env_variable():
    documents = [yaml.safe_load(block) for block in blocks("yaml")]
    catalog = next(document for document in documents if isinstance(document, dict) and "builder" in document)
    assert catalog["sources"] == {"root": "${KITTI_ROOT}/raw"}
    assert catalog["splits"]["train"] == {"num_samples": 2000}


def test_python_blocks_compile():
    sources = blocks("python")
    assert len(sources) >= 5
    for source in sources:
        ast.parse(source)
