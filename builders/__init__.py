"""Dataset builders, one module per family; importing the package registers them."""

from builders import scenes  # noqa: F401
