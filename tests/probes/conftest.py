"""The probes' tests run tiny models: one intra-op thread each (restored afterwards), which is faster
for such small ops and immune to a machine whose other cores are busy."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
