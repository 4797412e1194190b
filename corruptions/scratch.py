"""Work arrays kept per thread between calls.

A fresh array of a few MB costs more in page faults than many of the filters that fill it (outside
the build's workers, whose malloc settings keep freed memory): the corruptions that need large
temporaries take them from here, by name, and get the same memory back on the next call.
"""

from __future__ import annotations

import threading

import numpy as np

_ARRAYS = threading.local()


def scratch(name: str, shape: tuple[int, ...], dtype: type | np.dtype) -> np.ndarray:
    """The thread's array called `name`, (re)allocated when the shape or dtype changes; its
    contents are whatever the last user left."""
    arrays = _ARRAYS.__dict__
    array = arrays.get(name)
    if array is None or array.shape != shape or array.dtype != dtype:
        array = arrays[name] = np.empty(shape, dtype=dtype)
    return array
