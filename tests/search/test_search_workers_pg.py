"""Two `edgenas worker` processes on one study in a real PostgreSQL server; one is SIGKILLed mid-trial.

The expensive evaluator is the test evaluator in blocking mode: once the test arms it, the first evaluation
to start holds (and names its process in a file) and every other one waits for the release file. The test
kills the holder, waits past the heartbeat grace period and releases. Then: finished trials are untouched,
the killed trial was failed through its stale heartbeat and run again with the same genotype, the study has
exactly the requested number of COMPLETE trials, and no measurement was run to completion twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa
from pg_server import PgServer, pg_server  # noqa: F401  (the fixture)
from plugin_evaluators import pythonpath_env
from search_helpers import EDGENAS, tiny_space

TRIALS = 6
HEARTBEAT, GRACE = 1, 2

CONFIG = tiny_space("pg_tiny", "ethos-u55-256") + """\
search:
  objectives:
    - {{metric: fps, direction: max}}
    - {{metric: score, direction: max}}
  constraints: ["sram_kib <= device"]
  evaluators:
    - compiler
    - {{type: "plugin_evaluators:fake", name: test-blocking, arm_file: {arm}, hold_file: {hold},
       release_file: {release}, max_block_s: 60}}
  trials: {trials}
  seed: 7
  heartbeat_interval: {hb}
  grace_period: {grace}
"""


def _env(tmp: Path) -> dict[str, str]:
    return pythonpath_env({**os.environ, "EDGENAS_CACHE": str(tmp / "compiler-cache.sqlite")})


def _states(engine: sa.engine.Engine, study: str) -> list[tuple[int, str]]:
    with engine.connect() as c:
        rows = c.execute(sa.text(
            "SELECT t.number, t.state FROM trials t JOIN studies s ON s.study_id = t.study_id "
            "WHERE s.study_name = :n ORDER BY t.number"), {"n": study}).all()
    return [(int(n), str(s)) for n, s in rows]


def _wait(cond, timeout: float, what: str, procs: list[subprocess.Popen] = ()) -> None:  # type: ignore[assignment]
    deadline = time.monotonic() + timeout
    while not cond():
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"a worker exited early ({p.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_two_workers_one_killed_mid_trial(pg_server: PgServer, tmp_path: Path) -> None:  # noqa: F811
    import optuna

    url = pg_server.create_database("edgenas_kill")
    arm, hold, release = tmp_path / "arm", tmp_path / "hold", tmp_path / "release"
    cfg = tmp_path / "search.yaml"
    cfg.write_text(CONFIG.format(arm=arm, hold=hold, release=release, trials=TRIALS, hb=HEARTBEAT, grace=GRACE))
    env = _env(tmp_path)
    study = "kill-test"
    r = subprocess.run([EDGENAS, "search", str(cfg), "--storage", url, "--study", study, "--create-only"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "ready" in r.stdout

    logs = [open(tmp_path / f"worker{i}.log", "w") for i in range(2)]  # noqa: SIM115 (open for the workers' lifetime)
    workers = [subprocess.Popen([EDGENAS, "worker", "--storage", url, "--study", study, "--no-progress"],
                                stdout=logs[i], stderr=subprocess.STDOUT, env=env) for i in range(2)]
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        def complete() -> list[int]:
            return [n for n, s in _states(engine, study) if s == "COMPLETE"]

        _wait(lambda: len(complete()) >= 2, 90, "two completed trials", workers)
        arm.touch()
        _wait(hold.exists, 60, "an evaluation to hold", workers)
        _wait(lambda: len(hold.read_text().split()) == 2, 10, "the hold file's content")
        pid, held_arch = hold.read_text().split()
        victim = next(w for w in workers if w.pid == int(pid))
        survivor = next(w for w in workers if w is not victim)

        storage = optuna.storages.RDBStorage(url.replace("postgresql://", "postgresql+psycopg://"))
        before = {t.number: (t.params, t.values) for t in optuna.load_study(study_name=study, storage=storage)
                  .get_trials(states=(optuna.trial.TrialState.COMPLETE,))}
        running = [t for t in optuna.load_study(study_name=study, storage=storage).get_trials(
            states=(optuna.trial.TrialState.RUNNING,)) if t.user_attrs.get("arch_id") == held_arch]
        assert len(running) == 1, "the held evaluation belongs to one running trial"
        killed_trial = running[0]

        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        assert victim.returncode == -signal.SIGKILL
        time.sleep(GRACE + HEARTBEAT + 0.5)  # the killed trial's heartbeat is now stale
        release.touch()
        survivor.wait(timeout=90)
        assert survivor.returncode == 0, (tmp_path / "worker0.log").read_text() + (tmp_path / "worker1.log").read_text()

        st = optuna.load_study(study_name=study, storage=storage)
        trials = st.get_trials()
        by_state = Counter(t.state.name for t in trials)
        # exactly the requested number of completed trials
        assert by_state["COMPLETE"] == TRIALS, by_state
        # nothing lost: the trials finished before the kill are still there, unchanged
        for t in trials:
            if t.number in before:
                assert t.state.name == "COMPLETE" and (t.params, t.values) == before[t.number]
        # the killed trial was detected through its heartbeat, failed, and run again with the same genotype
        dead = next(t for t in trials if t.number == killed_trial.number)
        assert dead.state.name == "FAIL"
        retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed_trial.number]
        assert len(retries) == 1 and retries[0].state.name == "COMPLETE"
        assert retries[0].params == killed_trial.params
        # no measurement ran to completion twice; the killed one was started twice and finished once
        with engine.connect() as c:
            evals = c.execute(sa.text("SELECT key, arch_id, evaluator, finished IS NOT NULL, outcome, worker "
                                      "FROM edgenas_evaluations")).all()
            done = c.execute(sa.text("SELECT key, arch_id FROM edgenas_measurements WHERE state = 'done'")).all()
        finished = Counter(k for k, _, _, fin, _, _ in evals if fin)
        assert finished and max(finished.values()) == 1, finished
        assert {k for k, _ in done} == set(finished)
        unfinished = [(a, e, w) for _, a, e, fin, _, w in evals if not fin]
        assert len(unfinished) == 1
        assert unfinished[0][0] == held_arch and unfinished[0][1].startswith("test-blocking:")
        assert unfinished[0][2].endswith(f":{pid}")
        # every genotype of a completed trial was measured by each evaluator exactly once
        per_arch = Counter(a for _, a in done)
        completed_archs = {t.user_attrs["arch_id"] for t in trials if t.state.name == "COMPLETE"}
        assert all(per_arch[a] == 2 for a in completed_archs)  # compiler + test-blocking
        # the rest of the 16 networks were compiled (only) before the search: their FPS is a known objective
        assert len(per_arch) == 16 and {per_arch[a] for a in set(per_arch) - completed_archs} <= {1}
        log = (tmp_path / f"worker{workers.index(survivor)}.log").read_text()
        assert "worker done" in log

        # `edgenas search` on the finished study resumes nothing and prints the front
        r = subprocess.run([EDGENAS, "search", str(cfg), "--storage", url, "--study", study, "--no-progress"],
                           capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        assert "Pareto front" in r.stdout and f"{TRIALS} trials complete" in r.stdout
        assert Counter(s for _, s in _states(engine, study))["COMPLETE"] == TRIALS
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait(timeout=10)
        for f in logs:
            f.close()
        engine.dispose()
