"""Run a block with one OpenBLAS thread in the calling thread.

The surrogate's linear algebra is on small matrices (hundreds of rows), where OpenBLAS threads cost more
than they give; SciPy's L-BFGS-B was measured 13x slower with two BLAS threads than with one on a busy
two-core machine. OpenBLAS >= 0.3.27 has `openblas_set_num_threads_local`, which changes the calling
thread only and returns the previous value, so the setting is restored afterwards and nothing else in the
process is affected. Where the symbol or /proc is missing this is a no-op.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_SETTERS: list[Any] | None = None


def _setters() -> list[Any]:
    global _SETTERS
    if _SETTERS is None:
        found = []
        try:
            with open("/proc/self/maps") as f:
                paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line})
            for path in paths:
                fn = getattr(ctypes.CDLL(path), "openblas_set_num_threads_local", None)
                if fn is not None:
                    fn.restype, fn.argtypes = ctypes.c_int, [ctypes.c_int]
                    found.append(fn)
        except (OSError, AttributeError):
            found = []
        _SETTERS = found
    return _SETTERS


@contextmanager
def single_thread_blas() -> Iterator[None]:
    setters = _setters()
    previous = []
    try:
        for fn in setters:
            previous.append((fn, fn(1)))
        yield
    finally:
        for fn, value in previous:
            fn(value)
