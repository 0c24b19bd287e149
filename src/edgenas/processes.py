"""Processes that stop cleanly: SIGTERM handled like Ctrl-C, and children that never outlive their parent.

CI time-outs, docker and systemd stop a program with SIGTERM; Python's default is to die on the spot,
skipping every `finally`, so a sweep's pool workers were left blocked on a pipe with the cache open. The
command's main process turns SIGTERM into `Terminated`, a KeyboardInterrupt, so each command's Ctrl-C
path (stop, keep what is done, exit) serves both; the CLI exits 143 (128 + SIGTERM) for it.

A child can outlive a parent that dies by SIGKILL, where no Python code runs. `die_with_parent()` in the
child asks Linux to kill it when its parent goes (prctl PR_SET_PDEATHSIG); no library exposes that one
call (multiprocessing does not), hence the few lines of ctypes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
from typing import Any, Iterator

#: exit status of a command stopped by SIGTERM, as the shell reports a process killed by it
EXIT_TERMINATED = 128 + signal.SIGTERM
EXIT_INTERRUPTED = 128 + signal.SIGINT

_PR_SET_PDEATHSIG = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: every Ctrl-C path runs (it is a KeyboardInterrupt); the CLI exits 143."""


def _raise_terminated(signum: int, frame: Any) -> None:
    # Ignore further SIGTERMs while cleaning up: a second one must not cut the clean-up short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated()


def handle_sigterm() -> None:
    """In the main thread of the main process: SIGTERM raises `Terminated` (like Ctrl-C raises
    KeyboardInterrupt). Elsewhere a no-op: Python only runs signal handlers in the main thread."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


def die_with_parent(parent_pid: int | None = None) -> None:
    """Make this (child) process get SIGKILL when its parent dies, however the parent dies (Linux only;
    elsewhere nothing happens). `parent_pid`: the expected parent; if it is already gone when this runs
    (it died between fork and here), exit at once."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def child_initialiser(parent_pid: int) -> None:
    """For a pool worker: die with the parent, and leave Ctrl-C and SIGTERM to the parent, which stops
    the pool (a worker that took the terminal's SIGINT itself would print a traceback per worker)."""
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def exit_code_for_interrupts() -> Iterator[None]:
    """Turn Terminated / KeyboardInterrupt into SystemExit(143 / 130) with one line on stderr."""
    try:
        yield
    except Terminated:
        print("edgenas: terminated (SIGTERM)", file=sys.stderr)
        raise SystemExit(EXIT_TERMINATED) from None
    except KeyboardInterrupt:
        print("edgenas: interrupted", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
