"""Export tests run small tensors: one torch thread. On a 2-core machine shared with benchmarks, torch's
default thread pool made a 16x24 network 60-180x slower (measured: 1.5-4.5 s against 25 ms per run)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
