"""dataengine: reproducible, checked vision dataset releases as WebDataset shards."""

from dataengine.loading import load

__version__ = "0.1.0"
__all__ = ["load", "__version__"]
