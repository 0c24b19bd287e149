"""Processes that die cleanly, with real signals and real processes: the worker pool (a dead worker costs one
item), deferred interrupts, and `edgenas sweep` / `edgenas search` stopped by SIGTERM, Ctrl-C or SIGKILL.
After each, no process of the command's session may be left alive (read from /proc; zombies re-parented to
init count as gone: they are dead, only not yet reaped)."""

from __future__ import annotations

import csv
import faulthandler
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgenas.processes import (
    Terminated,
    WorkerDied,
    interrupt_pending,
    interrupts_allowed,
    interrupts_deferred,
    run_in_workers,
)

EDGENAS = str(Path(sys.executable).parent / "edgenas")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; PR_SET_PDEATHSIG")


def session_processes(sid: int) -> dict[int, str]:
    """Live processes of session `sid` (a command started with start_new_session: its pid): pid -> state."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()  # state ppid pgrp session ...
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid and fields[0] not in "ZXx":
            out[int(d.name)] = fields[0]
    return out


def until(cond: Callable[[], Any], timeout: float, what: str, proc: subprocess.Popen | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"edgenas exited ({proc.returncode}) before {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _as_a_foreground_job() -> None:
    # A shell without job control starts background commands with SIGINT ignored, and Python then installs
    # no Ctrl-C handler: a test suite started with `&` (a CI script, nohup) would hand that on to edgenas,
    # which rightly keeps ignoring Ctrl-C. The commands here stand for ones typed at a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([EDGENAS, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=env, cwd=cwd, preexec_fn=_as_a_foreground_job)  # noqa: PLW1509 (single-threaded test)


def finish(p: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        raise
    return p.returncode, out, err


def count_rows(db: Path, sql: str) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return con.execute(sql).fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


# ---- the pool ---------------------------------------------------------------------------------------------


def _square_or_die(x: int) -> int:
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    if x == 5:
        faulthandler.disable()  # pytest's would print this worker's stack
        os.kill(os.getpid(), signal.SIGSEGV)
    return x * x


def _raise_on_two(x: int) -> int:
    if x == 2:
        raise ValueError("two")
    return x


def _bad_init() -> None:
    raise RuntimeError("no init")


def _own_children() -> list[int]:
    return [int(c) for c in Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()]


@pytest.fixture
def no_children_after() -> Iterator[None]:
    before = set(_own_children())
    yield
    assert set(_own_children()) <= before  # the pool killed (if need be) and reaped every worker


def test_a_dead_worker_costs_only_its_item(no_children_after: None) -> None:
    got = dict(run_in_workers(_square_or_die, range(10), workers=2))
    assert sorted(got) == list(range(10))
    assert got[3] == WorkerDied(-signal.SIGKILL) and "SIGKILL: killed, out of memory?" in got[3].message
    assert got[5] == WorkerDied(-signal.SIGSEGV) and got[5].message == "worker process died (SIGSEGV: crashed)"
    assert {k: v for k, v in got.items() if k not in (3, 5)} == {k: k * k for k in range(10) if k not in (3, 5)}


def test_an_exception_stops_the_pool_and_is_raised_with_the_workers_traceback(no_children_after: None) -> None:
    with pytest.raises(ValueError, match="two") as e:
        list(run_in_workers(_raise_on_two, range(6), workers=2))
    assert "_raise_on_two" in str(e.value.__cause__)  # the traceback from the worker
    with pytest.raises(RuntimeError, match="no init"):
        list(run_in_workers(abs, range(3), workers=2, initializer=_bad_init))


def test_leaving_early_kills_the_workers(no_children_after: None) -> None:
    it = run_in_workers(time.sleep, [0.0, 0.0, 30.0, 30.0, 30.0], workers=2)
    next(it)
    assert len(_own_children()) >= 2
    it.close()  # what an exception in the consumer (Ctrl-C, SIGTERM) does to the generator


@pytest.fixture
def signal_handlers() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even for a suite started with `&`
    yield
    for s, h in saved.items():
        signal.signal(s, h)


def test_deferred_interrupts_wait_for_an_allowed_block_or_the_end(signal_handlers: None) -> None:
    steps = []
    with pytest.raises(Terminated), interrupts_deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler has run: nothing raised, noted
        steps.append(interrupt_pending())
        os.kill(os.getpid(), signal.SIGINT)  # Terminated stays the one to raise
        steps.append("after")
    assert steps == [True, "after"]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN  # a second SIGTERM cannot cut the clean-up short
    with pytest.raises(KeyboardInterrupt) as e, interrupts_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        steps.append("deferred")
        with interrupts_allowed():  # raised on entry
            steps.append("not reached")
    assert type(e.value) is KeyboardInterrupt and steps[-1] == "deferred"
    with pytest.raises(Terminated), interrupts_deferred(), interrupts_allowed():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # raised at once


def test_deferred_interrupts_leave_an_ignored_ctrl_c_ignored(signal_handlers: None) -> None:
    # `edgenas train ... &` from a script starts with SIGINT ignored; the terminal's Ctrl-C is not for it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with interrupts_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert not interrupt_pending()
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN


# ---- edgenas sweep ----------------------------------------------------------------------------------------

SWEEP_SPACE = """\
extends: flow_head_upsample
name: sig_sweep
resolutions: [64x96]
choices:
  backbone: [shufflenet, mbconv_e4]
  head1_block: [conv3x3, dsconv3x3, mbconv_e4, mbconv_e6]
"""
JOBS = 8
# The stopped-sweep test signals once two rows are cached: 24 jobs leave a fast machine time to be mid-sweep
# when the signal lands, however late a loaded test process wakes.
LONG_RESOLUTIONS = "[64x96, 96x128, 128x192]"
LONG_JOBS = 24


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    (tmp_path / "space.yaml").write_text(SWEEP_SPACE)
    return tmp_path


def sweep_args(d: Path, *more: str) -> list[str]:
    return ["sweep", str(d / "space.yaml"), "--cache", str(d / "cache.sqlite"), "--out", str(d / "out.csv"), *more]


def read_csv(p: Path) -> list[dict[str, str]]:
    with open(p, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("how", ["SIGTERM to edgenas", "Ctrl-C to the process group"])
def test_stopped_sweep_exits_cleanly_and_resumes(sweep_dir: Path, how: str) -> None:
    space = sweep_dir / "space.yaml"
    space.write_text(SWEEP_SPACE.replace("resolutions: [64x96]", f"resolutions: {LONG_RESOLUTIONS}"))
    p = start(*sweep_args(sweep_dir, "-j", "2"))
    cached = "SELECT count(*) FROM measurements"
    until(lambda: count_rows(sweep_dir / "cache.sqlite", cached) >= 2, 120, "two measurements", p)
    assert len(session_processes(p.pid)) == 3  # edgenas and its two workers
    if how.startswith("SIGTERM"):
        p.send_signal(signal.SIGTERM)  # as docker, systemd or a CI time-out do: to edgenas alone
    else:
        os.killpg(p.pid, signal.SIGINT)  # as the terminal does: to every process of the group
    code, _, err = finish(p)
    assert code == (143 if how.startswith("SIGTERM") else 130), err
    last = err.strip().splitlines()[-1]
    word = "terminated (SIGTERM)" if how.startswith("SIGTERM") else "interrupted"
    assert last.startswith(f"edgenas: {word}: sweep stopped after ") and "resumes" in last, err
    assert "Traceback" not in err
    assert session_processes(p.pid) == {}  # the workers were killed and reaped before edgenas exited
    assert not (sweep_dir / "out.csv").exists()  # no half-written CSV, not even a complete one of a part
    assert not [f for f in sweep_dir.iterdir() if f.name.startswith(".out.csv")]
    kept = count_rows(sweep_dir / "cache.sqlite", cached)
    r = subprocess.run([EDGENAS, *sweep_args(sweep_dir, "-j", "2")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"{LONG_JOBS} rows ({LONG_JOBS - kept} compiled, {kept} from cache, 0 failed" in " ".join(r.stderr.split())
    assert len(read_csv(sweep_dir / "out.csv")) == LONG_JOBS


def test_workers_die_with_a_killed_sweep(sweep_dir: Path) -> None:
    p = start(*sweep_args(sweep_dir, "-j", "2"))
    until(lambda: count_rows(sweep_dir / "cache.sqlite", "SELECT count(*) FROM measurements") >= 1, 120,
          "a measurement", p)
    workers = set(session_processes(p.pid)) - {p.pid}
    assert len(workers) == 2
    p.kill()  # no Python code runs in edgenas: only the kernel can end the workers (PR_SET_PDEATHSIG)
    p.communicate()
    until(lambda: not session_processes(p.pid), 10, "the workers to die")
    with sqlite3.connect(sweep_dir / "cache.sqlite") as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_killed_worker_costs_one_row_and_the_sweep_goes_on(sweep_dir: Path) -> None:
    # One worker, and every model written before it is compiled: once the third file is there the worker is
    # inside a job (compiling it, or already building the next), never idle.
    models = sweep_dir / "tflite"
    p = start(*sweep_args(sweep_dir, "-j", "1", "--save-tflite", str(models)))
    until(lambda: models.is_dir() and len(list(models.glob("*.tflite"))) >= 3, 120, "three models", p)
    (worker,) = set(session_processes(p.pid)) - {p.pid}
    os.kill(worker, signal.SIGKILL)  # as the OOM killer does
    code, _, err = finish(p)
    assert code == 0, err  # a sweep with failed rows succeeds: the rows say what failed
    rows = read_csv(sweep_dir / "out.csv")
    assert len(rows) == JOBS
    failed = [r for r in rows if r["status"] != "ok"]
    assert len(failed) == 1, failed
    assert failed[0]["error"] == "worker process died (SIGKILL: killed, out of memory?)"
    assert failed[0]["fps"] == "" and float(failed[0]["macs"]) > 0  # no figures measured; the IR's are there
    assert session_processes(p.pid) == {}
    # a death is not a property of the model: not cached, and the next run measures it
    r = subprocess.run([EDGENAS, *sweep_args(sweep_dir, "-j", "1")], capture_output=True, text=True, timeout=300)
    assert "(1 compiled, 7 from cache, 0 failed" in " ".join(r.stderr.split()), r.stderr


# ---- edgenas search ---------------------------------------------------------------------------------------

SEARCH_CONFIG = """\
extends: flow_head_upsample
name: sig_search
resolutions: [64x96]
choices:
  backbone: [shufflenet, mbconv_e4, mbconv_e6, resnet]
  head1_block: [conv3x3, dsconv3x3, mbconv_e4, mbconv_e6]
search:
  objectives:
    - {{metric: score, direction: max}}
    - {{metric: size, direction: min}}
  evaluators:
    - {{type: "plugin_evaluators:fake", name: test-blocking, metrics: [score, size], arm_file: {d}/arm,
       hold_file: {d}/hold, release_file: {d}/release, max_block_s: 60}}
  strategy: random
  trials: 5
  seed: 0
"""


def trial_states(db: Path) -> list[str]:
    with sqlite3.connect(db, timeout=5) as con:
        return [s for (s,) in con.execute("SELECT state FROM trials ORDER BY number")]


def test_sigterm_ends_the_running_trial_and_the_search_resumes(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text(SEARCH_CONFIG.format(d=tmp_path))
    db = tmp_path / "study.db"
    plugins = str(Path(__file__).parent / "search")  # plugin_evaluators: the test evaluator, through the plug-in door
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (plugins, os.environ.get("PYTHONPATH")) if p),
           "EDGENAS_CACHE": str(tmp_path / "cache.sqlite")}
    args = ["search", "space.yaml", "--storage", str(db), "--no-progress"]
    p = start(*args, env=env, cwd=tmp_path)
    until(lambda: count_rows(db, "SELECT count(*) FROM trials WHERE state = 'COMPLETE'") >= 2, 120,
          "two complete trials", p)
    (tmp_path / "arm").touch()  # the next evaluation holds its trial open until released (never, here)
    until(lambda: (tmp_path / "hold").exists(), 60, "a trial held in its evaluator", p)
    p.send_signal(signal.SIGTERM)
    code, _, err = finish(p)
    assert code == 143, err
    assert err.strip().splitlines()[-1] == "edgenas: terminated (SIGTERM)" and "Traceback" not in err, err
    assert session_processes(p.pid) == {}
    states = trial_states(db)
    assert states[-1] == "FAIL" and states.count("COMPLETE") >= 2 and "RUNNING" not in states, states
    (tmp_path / "arm").unlink()
    r = subprocess.run([EDGENAS, *args], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "5 trials complete" in r.stdout
    states = trial_states(db)
    assert states.count("COMPLETE") == 5 and states.count("FAIL") == 1 and "RUNNING" not in states, states
