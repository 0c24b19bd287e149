"""Capture what C/C++ code prints to file descriptors 1 and 2.

The compiler's C++ core writes warnings (unsupported operators, ignored options) straight to the
process's stdout/stderr; during a sweep of thousands of compiles that floods the terminal, and the
text is worth keeping with the measurement instead.
"""

from __future__ import annotations

import ctypes
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

_libc = ctypes.CDLL(None)
MAX_LOG_CHARS = 20_000


def _flush_all() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError, OSError):
            pass
    _libc.fflush(None)  # C stdio buffers (std::cout is synced with them)


@contextmanager
def captured_fds() -> Iterator[list[str]]:
    """Redirect fds 1 and 2 to a temporary file; the yielded list receives the text on exit."""
    box: list[str] = []
    _flush_all()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as tmp:
        try:
            os.dup2(tmp.fileno(), 1)
            os.dup2(tmp.fileno(), 2)
            yield box
        finally:
            _flush_all()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            tmp.seek(0)
            text = tmp.read().decode("utf-8", errors="replace")
            box.append(text[-MAX_LOG_CHARS:])
