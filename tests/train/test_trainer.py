"""Stand-alone training: seeded, learns, resumes bit for bit after Ctrl-C/SIGTERM (checkpoint on the way
out) and after SIGKILL (the last periodic checkpoint), early stopping, checkpoints loaded weights-only."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tiny_task import HERE, BlobTask, tiny_graph

from edgenas.errors import ConfigError
from edgenas.train.builder import GraphModule
from edgenas.train.curve import fit_learning_curve
from edgenas.train.recipe import TrainRecipe
from edgenas.train.trainer import BEST, CHECKPOINT, Trainer, load_checkpoint, lr_at

IDENTITY = {"space": "tiny", "space_key": "k", "arch_id": "a1", "genotype": "tiny"}
RECIPE = TrainRecipe(epochs=4, batch_size=16, lr=0.01, seed=3, checkpoint_every=2, threads=1)


def make_trainer(out: Path, recipe: TrainRecipe = RECIPE, on_progress=None) -> Trainer:
    torch.manual_seed(recipe.seed)
    task = BlobTask()
    return Trainer(GraphModule(tiny_graph()), task, task.data((16, 16), seed=recipe.seed), recipe, out,
                   identity=IDENTITY, device=torch.device("cpu"), on_progress=on_progress)


def weights(t: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in t.module.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[dict[str, torch.Tensor], list]:
    torch.set_num_threads(1)
    t = make_trainer(tmp_path_factory.mktemp("ref"))
    res = t.run()
    return weights(t), res.history


def test_it_learns_and_the_same_seed_gives_the_same_weights(reference, tmp_path) -> None:
    w_ref, hist = reference
    assert hist[-1]["top1"] > 50.0  # 4 classes: chance is 25 %
    t = make_trainer(tmp_path)
    t.run()
    assert same(weights(t), w_ref)


def test_interrupted_run_resumes_to_the_same_weights(reference, tmp_path) -> None:
    w_ref, hist_ref = reference
    def stop_inside_epoch_2(p):
        if (p.epoch, p.step) == (1, 1):
            raise KeyboardInterrupt  # what Ctrl-C (and SIGTERM through edgenas.processes) raises

    with pytest.raises(KeyboardInterrupt):
        make_trainer(tmp_path, on_progress=stop_inside_epoch_2).run()
    state = load_checkpoint(tmp_path / CHECKPOINT)
    assert (state["epoch"], state["step_in_epoch"]) == (1, 1)  # 6 steps per epoch: stopped inside epoch 2
    t = make_trainer(tmp_path)
    t.resume()
    carried = state["cpu_seconds"]
    c0 = time.process_time()
    res = t.run()
    resumed_session = time.process_time() - c0
    assert same(weights(t), w_ref)
    assert res.history == hist_ref
    # CPU time is carried over the interruption: the result counts both sessions
    assert carried > 0 and carried < res.cpu_seconds <= carried + resumed_session


def test_a_checkpoint_from_before_cpu_time_was_kept_resumes_with_it_unknown(tmp_path) -> None:
    def stop_after_epoch_1(p):
        if (p.epoch, p.step) == (1, 1):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_trainer(tmp_path, on_progress=stop_after_epoch_1).run()
    state = load_checkpoint(tmp_path / CHECKPOINT)
    del state["cpu_seconds"]  # as checkpoints written before it was kept
    torch.save(state, tmp_path / CHECKPOINT)
    t = make_trainer(tmp_path)
    t.resume()
    res = t.run()
    assert res.cpu_seconds is None and res.seconds > 0  # not this session's alone passed off as the whole


KILL_SCRIPT = """
import sys, time, torch
sys.path.insert(0, {here!r})
from pathlib import Path
from test_trainer import make_trainer
torch.set_num_threads(1)
def slow(p):
    time.sleep(0.05)
make_trainer(Path({out!r}), on_progress=slow).run()
"""


def test_sigkill_then_resume_gives_the_same_weights(reference, tmp_path) -> None:
    w_ref, _ = reference
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT.format(here=str(HERE), out=str(tmp_path))])
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:  # wait for a checkpoint from the middle of the run
            if (tmp_path / CHECKPOINT).exists():
                state = load_checkpoint(tmp_path / CHECKPOINT)
                if state["epoch"] >= 1:
                    break
            time.sleep(0.05)
        else:
            pytest.fail("no checkpoint within 60 s")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not list(tmp_path.glob(".*.tmp*"))  # no half-written file left behind
    t = make_trainer(tmp_path)
    t.resume()
    assert t.epoch < RECIPE.epochs
    t.run()
    assert same(weights(t), w_ref)


def test_early_stopping_and_best_checkpoint(tmp_path) -> None:
    recipe = RECIPE.with_overrides(epochs=30, patience=2, lr=1e-6)  # too small a rate to improve for long
    t = make_trainer(tmp_path, recipe)
    res = t.run()
    assert res.stopped_early and len(res.history) < 30
    best = torch.load(tmp_path / BEST, weights_only=True)
    assert best["epoch"] == res.best_epoch and best["metric"] == res.best_metric


def test_resume_refuses_another_network_or_recipe(reference, tmp_path) -> None:
    make_trainer(tmp_path, RECIPE.with_overrides(epochs=1)).run()
    other = make_trainer(tmp_path, RECIPE.with_overrides(epochs=1))
    other.identity = {**IDENTITY, "arch_id": "other"}
    with pytest.raises(ConfigError, match="another network"):
        other.resume()
    with pytest.raises(ConfigError, match="another recipe .*lr"):
        make_trainer(tmp_path, RECIPE.with_overrides(epochs=1, lr=0.5)).resume()


def test_not_a_checkpoint_is_a_config_error(tmp_path) -> None:
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not an edgenas checkpoint"):
        load_checkpoint(bad)
    with pytest.raises(ConfigError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_lr_schedule_warms_up_and_ends_near_zero() -> None:
    r = TrainRecipe(epochs=10, lr=1.0, warmup_epochs=1)
    assert lr_at(r, 0, 10) == pytest.approx(0.1)
    assert lr_at(r, 9, 10) == pytest.approx(1.0)
    assert lr_at(r, 99, 10) < 1e-3


def test_learning_curve_fit_recovers_a_known_power_law() -> None:
    t = list(range(1, 13))
    acc = [90.0 - 30.0 * x ** -0.7 for x in t]
    fit = fit_learning_curve(t, acc, rising=True)
    assert fit is not None
    assert fit.a == pytest.approx(90.0, abs=0.05) and fit.c == pytest.approx(0.7, abs=0.01)
    epe = [1.5 + 4.0 * x ** -0.5 for x in t]
    fit = fit_learning_curve(t, epe, rising=False)
    assert fit.a == pytest.approx(1.5, abs=0.02) and fit.at(100) == pytest.approx(1.9, abs=0.02)
    assert fit_learning_curve([1, 2], [3, 4], rising=True) is None


def test_learning_curve_asymptote_stays_within_the_metrics_bound() -> None:
    # a flow run leaving the no-motion plateau (its EPE falling faster each epoch): unbounded, the power
    # law's "asymptote" is far below 0 px
    t, epe = [1, 2, 3, 4], [1.952, 1.933, 1.892, 1.725]
    free = fit_learning_curve(t, epe, rising=False)
    assert free is not None and free.a < 0
    bounded = fit_learning_curve(t, epe, rising=False, best_possible=0.0)
    assert bounded is not None and 0.0 <= bounded.a <= min(epe)
    assert bounded.at_bound == (bounded.a == pytest.approx(0.0, abs=1e-6)) and not free.at_bound
    # the seed's resnet network leaving the plateau late (a measured run): pinned at 0 px, said so
    late = [1.946, 1.947, 1.946, 1.872, 1.772, 1.741, 1.632, 1.596, 1.552, 1.547]
    pinned = fit_learning_curve(range(1, 11), late, rising=False, best_possible=0.0)
    assert pinned is not None and pinned.at_bound and pinned.a == pytest.approx(0.0, abs=1e-6)
    acc = [20.0, 60.0, 90.0, 99.0]
    up = fit_learning_curve(t, acc, rising=True, best_possible=100.0)
    assert up is not None and up.a <= 100.0
    # a bound that does not bind changes nothing
    known = [1.5 + 4.0 * x ** -0.5 for x in range(1, 13)]
    fit = fit_learning_curve(range(1, 13), known, rising=False, best_possible=0.0)
    assert fit.a == pytest.approx(1.5, abs=0.02) and not fit.at_bound
