"""Processes that stop cleanly: SIGTERM handled like Ctrl-C, and children that never outlive their parent.

CI time-outs, docker and systemd stop a program with SIGTERM; Python's default is to die on the spot,
skipping every `finally`, so a sweep's pool workers were left blocked on a pipe with the cache open. The
command's main process turns SIGTERM into `Terminated`, a KeyboardInterrupt, so each command's Ctrl-C
path (stop, keep what is done, exit) serves both; the CLI exits 143 (128 + SIGTERM) for it.

A child can outlive a parent that dies by SIGKILL, where no Python code runs. `die_with_parent()` in the
child asks Linux to kill it when its parent goes (prctl PR_SET_PDEATHSIG); no library exposes that one
call (multiprocessing does not), hence the few lines of ctypes.

`run_in_workers` is the one process pool of edgenas (sweep, npu-support; training next). A worker that dies
(the compiler segfaults, the OOM killer) costs only the item it was running, reported as `WorkerDied`, and
a fresh worker takes its place; on any exception in the parent (Ctrl-C, SIGTERM) every worker is killed at
once. concurrent.futures cannot do either: a dead worker breaks the whole executor without saying which
item it ran, and leaving its `with` block waits for the running items.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import pickle
import signal
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

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
    (it died between fork and here), exit at once. Linux sends the signal when the *thread* that started
    the child ends, so start children from a thread that lives as long as they should (the main one)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def child_initialiser(parent_pid: int, then: Callable[..., Any] | None = None, *args: Any) -> None:
    """For a pool worker: die with the parent, and leave Ctrl-C and SIGTERM to the parent, which stops
    the pool (a worker that took the terminal's SIGINT itself would print a traceback per worker); SIGTERM
    sent to the worker itself ends it at once. Then `then(*args)`, the pool's own initialiser, if given:
    `ProcessPoolExecutor(initializer=child_initialiser, initargs=(os.getpid(), init, *init_args))`."""
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if then is not None:
        then(*args)


def kill_executor(pool: Any) -> None:
    """Kill a concurrent.futures ProcessPoolExecutor's workers now, for an interrupt: leaving its `with`
    block would otherwise wait for every running item. (Python 3.14 has `kill_workers`; before it the
    processes are only reachable through a private attribute.)"""
    if hasattr(pool, "kill_workers"):
        pool.kill_workers()
        return
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.kill()
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.join(5)
    pool.shutdown(wait=False, cancel_futures=True)


# ---- the pool ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerDied:
    """The worker running an item died before answering: `exitcode` as multiprocessing reports it (-N for
    signal N)."""

    exitcode: int

    @property
    def cause(self) -> str:
        """E.g. "SIGKILL: killed, out of memory?" or "exit code 1"."""
        if self.exitcode >= 0:
            return f"exit code {self.exitcode}"
        try:
            name = signal.Signals(-self.exitcode).name
        except ValueError:
            name = f"signal {-self.exitcode}"
        return name + _SIGNAL_HINTS.get(-self.exitcode, "")

    @property
    def message(self) -> str:
        return f"worker process died ({self.cause})"


_SIGNAL_HINTS = {signal.SIGKILL: ": killed, out of memory?", signal.SIGSEGV: ": crashed", signal.SIGABRT: ": aborted",
                 signal.SIGBUS: ": crashed", signal.SIGFPE: ": crashed", signal.SIGILL: ": crashed"}
_STOP = None  # what the parent sends a worker to end it
_INIT = -1  # the index a worker answers with when its initialiser raised


class _RemoteTraceback(Exception):
    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


def _portable(e: BaseException) -> tuple[BaseException, str]:
    """The exception and its traceback text, in a form that survives the pipe."""
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    try:
        pickle.loads(pickle.dumps(e))
    except Exception:
        e = RuntimeError(f"{type(e).__name__}: {e}")
    return e, tb


def _worker_main(conn: Connection, parent_pid: int, func: Callable[[Any], Any],
                 initializer: Callable[..., Any] | None, initargs: tuple) -> None:
    child_initialiser(parent_pid)
    try:
        try:
            if initializer is not None:
                initializer(*initargs)
        except Exception as e:
            conn.send((_INIT, False, _portable(e)))
            return
        while (task := conn.recv()) is not _STOP:
            i, item = task
            try:
                answer = (i, True, func(item))
            except Exception as e:
                answer = (i, False, _portable(e))
            try:
                conn.send(answer)
            except (pickle.PicklingError, TypeError, AttributeError) as e:
                conn.send((i, False, _portable(e)))
    except (EOFError, BrokenPipeError):
        pass  # the parent has gone
    finally:
        conn.close()


class _Worker:
    def __init__(self, ctx: Any, target_args: tuple) -> None:
        here, there = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(there, *target_args), name="edgenas-worker")
        self.proc.start()
        there.close()  # only the child holds its end: the parent reads EOF when the child is gone
        self.conn: Connection = here
        self.task: tuple[int, Any] | None = None

    def stop(self, *, wait_s: float) -> None:
        if wait_s > 0 and self.proc.is_alive():
            with contextlib.suppress(OSError):
                self.conn.send(_STOP)
            self.proc.join(wait_s)
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self.conn.close()


def run_in_workers(func: Callable[[T], R], items: Iterable[T], *, workers: int,
                   initializer: Callable[..., Any] | None = None, initargs: tuple = (),
                   context: str | None = None) -> Iterator[tuple[int, R | WorkerDied]]:
    """`func(item)` for every item in `workers` processes; yields (index, result) as results arrive. The
    result is a `WorkerDied` when the process running that item died; a fresh process takes its place and
    the rest go on. An exception raised by `func` or `initializer` stops everything and is raised here.

    One item per message (no chunks), so a death is pinned on exactly one item; a round trip costs
    ~0.1 ms, nothing beside a compile. Workers run `child_initialiser` (die with this process, leave
    Ctrl-C to it) and then `initializer(*initargs)`; `context` is a multiprocessing start method, default
    fork on Linux (children inherit the imported modules) and spawn elsewhere. Leaving the generator
    early, normally or by an exception such as Ctrl-C or `Terminated`, kills the workers at once.
    """
    ctx = mp.get_context(context or ("fork" if sys.platform.startswith("linux") else "spawn"))
    todo: deque[tuple[int, T]] = deque(enumerate(items))
    target_args = (os.getpid(), func, initializer, initargs)
    pool: list[_Worker] = []
    finished = False

    def feed(w: _Worker) -> _Worker:
        """Give `w` the next item; a worker found dead (between items) is replaced first."""
        for _ in range(3):
            if not todo:
                return w
            if not w.proc.is_alive():
                w.stop(wait_s=0)
                w = _Worker(ctx, target_args)
            try:
                w.conn.send(todo[0])
            except OSError:  # it died just now: a fresh one takes the item
                w.stop(wait_s=0)
                w = _Worker(ctx, target_args)
                continue
            w.task = todo.popleft()
            return w
        raise RuntimeError("worker processes die as soon as they start")

    try:
        for _ in range(max(1, min(workers, len(todo)))):
            pool.append(_Worker(ctx, target_args))
        pool = [feed(w) for w in pool]
        while any(w.task is not None for w in pool):
            busy = [w for w in pool if w.task is not None]
            ready = set(wait([w.conn for w in busy] + [w.proc.sentinel for w in busy]))
            for k, w in enumerate(pool):
                if w.task is None or (w.conn not in ready and w.proc.sentinel not in ready):
                    continue
                try:
                    answer = w.conn.recv() if w.conn.poll() else None
                except (EOFError, OSError):  # closed, or cut off mid-message: it died
                    answer = None
                i = w.task[0]
                w.task = None
                if answer is None:  # it died; `feed` starts a fresh one if there is more to do
                    w.proc.join(5)
                    w.stop(wait_s=0)
                    result: Any = WorkerDied(w.proc.exitcode if w.proc.exitcode is not None else -signal.SIGKILL)
                else:
                    j, ok, result = answer
                    if not ok:
                        exc, tb = result
                        raise exc from _RemoteTraceback(tb)
                    assert j == i, (j, i)
                pool[k] = feed(w)
                yield i, result
        finished = True
    finally:
        for w in pool:
            w.stop(wait_s=5 if finished else 0)


class _Gate:
    """State of `interrupts_deferred` (signal handlers run in the main thread only: no lock needed)."""

    depth = 0
    allowed = False
    pending: type[KeyboardInterrupt] | None = None  # what arrived (Terminated wins over Ctrl-C)
    raised = False  # ... and has been raised


def _gate_handler(signum: int, frame: Any) -> None:
    exc = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    if _Gate.raised:
        return  # one interrupt is on its way out; the clean-up it runs must not be cut short
    if _Gate.pending is None or exc is Terminated:
        _Gate.pending = exc
    if _Gate.allowed:
        _Gate.raised = True
        raise _Gate.pending()


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait here: noted, and raised (KeyboardInterrupt / Terminated) only inside an
    `interrupts_allowed()` block or on leaving this one. For loops whose bookkeeping must not be cut in
    half (a study's ask/tell, a checkpoint write) around work that may stop at any moment (the objective).
    In the main thread only; elsewhere it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _Gate.depth == 0:
        saved = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
        _Gate.pending, _Gate.raised, _Gate.allowed = None, False, False
        if saved[0] is not signal.SIG_IGN:  # Ctrl-C stays ignored where the shell made it so (`cmd &` in a script)
            signal.signal(signal.SIGINT, _gate_handler)
        signal.signal(signal.SIGTERM, _gate_handler)
    _Gate.depth += 1
    try:
        yield
    finally:
        _Gate.depth -= 1
        if _Gate.depth == 0:
            signal.signal(signal.SIGINT, saved[0])
            # as after `handle_sigterm`'s first SIGTERM: a second one must not cut the clean-up short
            signal.signal(signal.SIGTERM, signal.SIG_IGN if _Gate.pending is Terminated else saved[1])
            pending, raised = _Gate.pending, _Gate.raised
            _Gate.pending, _Gate.raised = None, False
            if pending is not None and not raised:
                raise pending()


def interrupt_pending() -> bool:
    """Inside `interrupts_deferred()`: an interrupt is waiting (stop at the next good point)."""
    return _Gate.depth > 0 and _Gate.pending is not None


@contextlib.contextmanager
def interrupts_allowed() -> Iterator[None]:
    """Inside `interrupts_deferred()`: interrupts raise at once again, a waiting one on entry."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = _Gate.allowed
    _Gate.allowed = True
    try:
        if _Gate.depth and _Gate.pending is not None and not _Gate.raised:
            _Gate.raised = True
            raise _Gate.pending()
        yield
    finally:
        _Gate.allowed = before


@contextlib.contextmanager
def exit_code_for_interrupts() -> Iterator[None]:
    """Turn Terminated / KeyboardInterrupt into SystemExit(143 / 130) with one line on stderr; a command
    that has something to say (what was kept, how to resume) puts it in the exception's args on the way
    out (`e.args = (text,)`, then `raise`)."""
    try:
        yield
    except Terminated as e:
        print("edgenas: terminated (SIGTERM)" + _said(e), file=sys.stderr)
        raise SystemExit(EXIT_TERMINATED) from None
    except KeyboardInterrupt as e:
        print("edgenas: interrupted" + _said(e), file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None


def _said(e: BaseException) -> str:
    return f": {e.args[0]}" if e.args and isinstance(e.args[0], str) else ""
