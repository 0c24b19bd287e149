"""Supernet training: both strategies resume bit for bit after an interrupt, the sandwich rule picks the
largest and smallest sub-networks by MACs (checked by brute force), and in-place distillation sends no
gradient into the teacher."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import supernet_helpers as h
import torch
import torch.nn.functional as F

from edgenas.errors import ConfigError
from edgenas.space.space import load_space
from edgenas.train.supernet.run import make_setup, train_supernet
from edgenas.train.supernet.sampling import extremes
from edgenas.train.supernet.store import build_store
from edgenas.train.supernet.strategies import distill_loss, sandwich_plan, sandwich_step
from edgenas.train.supernet.supernet import Supernet
from edgenas.train.tasks import make_task
from edgenas.train.trainer import CHECKPOINT, load_checkpoint

torch.set_num_threads(1)


def store_weights(out: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(out / CHECKPOINT)["model"]


@pytest.mark.parametrize("strategy", ["spos", "sandwich", "sandwich-labels"])
def test_interrupted_training_resumes_to_the_same_store(tmp_path, strategy) -> None:
    cfg = h.write(tmp_path, h.FLOW)
    ref = train_supernet(make_setup(str(cfg), strategy=strategy), tmp_path / "ref")
    assert len(ref.history) == 2

    def stop(p):
        if (p.epoch, p.step) == (1, 1):  # inside the second epoch (3 steps an epoch)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_supernet(make_setup(str(cfg), strategy=strategy), tmp_path / "cut", on_progress=stop)
    assert (load_checkpoint(tmp_path / "cut" / CHECKPOINT)["epoch"],
            load_checkpoint(tmp_path / "cut" / CHECKPOINT)["step_in_epoch"]) == (1, 1)
    res = train_supernet(make_setup(str(cfg), strategy=strategy), tmp_path / "cut", resume=True)
    a, b = store_weights(tmp_path / "ref"), store_weights(tmp_path / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert res.history == ref.history
    first = load_checkpoint(tmp_path / "ref" / CHECKPOINT)
    assert first["identity"]["strategy"] == strategy and first["identity"]["arch_id"] == "supernet"


def test_resume_refuses_another_space_task_or_strategy(tmp_path) -> None:
    cfg = h.write(tmp_path, h.FLOW.replace("epochs: 2", "epochs: 1"))
    train_supernet(make_setup(str(cfg), strategy="spos"), tmp_path / "run")
    for text, strategy, needle in (
        (h.FLOW.replace("epochs: 2", "epochs: 1"), "sandwich", "another strategy"),
        (h.FLOW.replace("epochs: 2", "epochs: 1").replace("head2: 8}", "head2: 12}"), "spos", "another space"),
        (h.FLOW.replace("epochs: 2", "epochs: 1").replace("train_samples: 24", "train_samples: 16"), "spos",
         "another task"),
    ):
        other = h.write(tmp_path, text, "other.yaml")
        with pytest.raises(ConfigError, match=needle) as e:
            train_supernet(make_setup(str(other), strategy=strategy), tmp_path / "run", resume=True)
        assert "\n" not in str(e.value)


def _macs(space, values, res) -> int:
    return space.build(space.genotype(values), res).macs


@pytest.mark.parametrize("text", [h.FLOW, h.DIGITS], ids=["flow", "digits"])
def test_largest_and_smallest_are_by_macs_brute_force(tmp_path, text) -> None:
    space = load_space(h.write(tmp_path, text))
    res = space.resolutions[0]
    keys = list(space.choices)
    macs = {combo: _macs(space, dict(zip(keys, combo)), res)
            for combo in itertools.product(*(space.choices[k] for k in keys))}
    ext = extremes(space, res)
    assert _macs(space, ext.largest.as_dict(), res) == max(macs.values())
    assert _macs(space, ext.smallest.as_dict(), res) == min(macs.values())
    assert max(macs.values()) > min(macs.values())


def test_sandwich_plan_puts_the_teacher_first_at_the_largest_resolution(tmp_path) -> None:
    setup = make_setup(str(h.write(tmp_path, h.FLOW)))
    store, _ = build_store(setup.space, setup.resolution, 0)
    net = Supernet(setup.space, store, setup.space.default)
    ext = extremes(setup.space, setup.resolution)
    plans = [sandwich_plan(net, ext, 3, setup.resolutions, 0, step) for step in range(20)]
    assert all(p[0] == (ext.largest, (16, 16)) and p[1] == (ext.smallest, (8, 8)) and len(p) == 5 for p in plans)
    assert plans[3] == sandwich_plan(net, ext, 3, setup.resolutions, 0, 3)  # a step draws the same again
    assert len({tuple(str(g) for g, _ in p[2:]) for p in plans}) > 1  # and the random ones vary


def test_distillation_sends_no_gradient_into_the_teacher() -> None:
    flow = make_task({"type": "flow"}, source="t", input_channels=6)
    teacher = tuple(torch.randn(2, 2, s, s, requires_grad=True) for s in (4, 8, 16))
    student = tuple(torch.randn(2, 2, s, s, requires_grad=True) for s in (4, 8, 16))
    distill_loss(flow, student, teacher).backward()
    assert all(t.grad is None for t in teacher) and all(s.grad is not None for s in student)
    digits = make_task({"type": "digits"}, source="t", input_channels=1)
    logits_t = torch.randn(4, 10, requires_grad=True)
    logits_s = torch.randn(4, 10, requires_grad=True)
    loss = distill_loss(digits, (logits_s,), (logits_t,))
    loss.backward()
    assert logits_t.grad is None and logits_s.grad is not None
    ref = F.kl_div(F.log_softmax(logits_s, 1), F.softmax(logits_t, 1), reduction="batchmean")
    assert torch.allclose(loss, ref) and loss > 0
    same = logits_t.detach()
    assert float(distill_loss(digits, (same,), (same,))) == pytest.approx(0.0, abs=1e-6)


def test_sandwich_step_teacher_learns_from_labels_only(tmp_path) -> None:
    """With the smallest as the only student, the weights only the largest uses get exactly the gradient
    of the largest's label loss: the students' distillation adds nothing to them."""
    setup = make_setup(str(h.write(tmp_path, h.FLOW)))
    store, _ = build_store(setup.space, setup.resolution, 0)
    net = Supernet(setup.space, store, setup.space.default).train()
    ext = extremes(setup.space, setup.resolution)
    x = torch.randn(2, 6, 16, 16)
    target = torch.cat([torch.randn(2, 2, 16, 16), torch.ones(2, 1, 16, 16)], 1)
    step = sandwich_step(net, setup.task, ext, 0, [(16, 16)], 0, lambda: None)
    step((x,), target, 0)
    full = {k: p.grad.clone() for k, p in store.named_parameters() if p.grad is not None}
    store.zero_grad(set_to_none=True)
    setup.task.loss(net.run(ext.largest, x), target).backward()
    alone = {k: p.grad.clone() for k, p in store.named_parameters() if p.grad is not None}
    store.zero_grad(set_to_none=True)
    setup.task.loss(net.run(ext.smallest, x), target).backward()
    student_slots = {k for k, p in store.named_parameters() if p.grad is not None}
    teacher_only = set(alone) - student_slots
    assert teacher_only and all(torch.allclose(full[k], alone[k], atol=1e-7, rtol=0) for k in teacher_only)


def test_sandwich_labels_trains_every_sub_network_on_the_labels(tmp_path) -> None:
    """sandwich-labels: the step's store gradient is the sum of each planned sub-network's label-loss
    gradient, computed one by one (and differs from the distilling sandwich's)."""
    setup = make_setup(str(h.write(tmp_path, h.FLOW)), strategy="sandwich-labels")
    store, _ = build_store(setup.space, setup.resolution, 0)
    net = Supernet(setup.space, store, setup.space.default).train()
    ext = extremes(setup.space, setup.resolution)
    x = torch.randn(2, 6, 16, 16)
    target = torch.cat([torch.randn(2, 2, 16, 16), torch.ones(2, 1, 16, 16)], 1)
    plan = sandwich_plan(net, ext, 2, [(16, 16)], 0, 0)

    def grads() -> dict[str, torch.Tensor]:
        g = {k: p.grad.clone() for k, p in store.named_parameters() if p.grad is not None}
        store.zero_grad(set_to_none=True)
        return g

    sandwich_step(net, setup.task, ext, 2, [(16, 16)], 0, lambda: None, distill=False)((x,), target, 0)
    step = grads()
    for g, _ in plan:
        setup.task.loss(net.run(g, x), target).backward()
    by_hand = grads()
    assert step.keys() == by_hand.keys()
    assert all(torch.allclose(step[k], by_hand[k], atol=1e-6, rtol=1e-5) for k in step)
    sandwich_step(net, setup.task, ext, 2, [(16, 16)], 0, lambda: None)((x,), target, 0)
    distilled = grads()
    assert any(not torch.allclose(distilled[k], step[k], atol=1e-6, rtol=1e-5) for k in step)


def test_resolution_choice_resizes_the_batch_consistently() -> None:
    """At half the size a uniform motion of (3, -2) pixels is (1.5, -1) pixels; a constant image stays
    constant; class labels stay."""
    from edgenas.train.supernet.strategies import resize_batch

    flow = make_task({"type": "flow"}, source="t", input_channels=6)
    x = torch.full((2, 6, 16, 16), 0.25)
    target = torch.cat([torch.full((2, 1, 16, 16), 3.0), torch.full((2, 1, 16, 16), -2.0),
                        torch.ones(2, 1, 16, 16)], 1)
    (xs,), t = resize_batch(flow, (x,), target, (8, 8))
    assert xs.shape == (2, 6, 8, 8) and torch.allclose(xs, torch.full_like(xs, 0.25))
    assert t.shape == (2, 3, 8, 8)
    assert torch.allclose(t[:, 0], torch.full((2, 8, 8), 1.5)) and torch.allclose(t[:, 1], torch.full((2, 8, 8), -1.0))
    digits = make_task({"type": "digits"}, source="t", input_channels=1)
    labels = torch.tensor([3, 7])
    (xs,), t = resize_batch(digits, (torch.randn(2, 1, 16, 16),), labels, (8, 8))
    assert xs.shape == (2, 1, 8, 8) and torch.equal(t, labels)
