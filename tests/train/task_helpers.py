"""Shared by the task tests."""

from __future__ import annotations

import numpy as np


def assert_close(a, b, *, atol: float = 1e-5, rtol: float = 1.3e-6) -> None:
    """torch.testing.assert_close's float32 tolerances, without its first-call import of torch.distributed
    (seconds)."""
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=atol, rtol=rtol)
