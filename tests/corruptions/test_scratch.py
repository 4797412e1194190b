import threading

import numpy as np

from corruptions.scratch import scratch


def test_same_name_and_shape_give_the_same_memory_back():
    first = scratch("test.a", (4, 5), np.int32)
    assert scratch("test.a", (4, 5), np.int32) is first


def test_another_shape_or_dtype_gets_a_new_array():
    first = scratch("test.b", (4, 5), np.int32)
    assert scratch("test.b", (5, 4), np.int32).shape == (5, 4)
    assert scratch("test.b", (5, 4), np.float64).dtype == np.float64
    assert scratch("test.b", (4, 5), np.int32) is not first


def test_threads_do_not_share_arrays():
    mine = scratch("test.c", (3,), np.int64)
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(scratch("test.c", (3,), np.int64)))
    thread.start()
    thread.join()
    assert theirs[0] is not mine
