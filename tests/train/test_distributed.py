"""Training under torchrun: a real `python -m torch.distributed.run --standalone --nproc_per_node 2` run on
the CPU (gloo) of a stand-alone network (`train_candidate`) and of a sandwich supernet (`train_supernet`),
this file being the workers' script. Each rank dumps its weights after the last step, the training sample
indices it read per step and the sub-networks it ran; the tests check that both ranks end with the same
weights (and the same as rank 0's checkpoint), that the ranks' shares of every step are disjoint and make
up the single-process batch (so the epoch), that every rank runs the same sub-network at every step, and
that a supernet run interrupted under torchrun and resumed under torchrun ends bit for bit where the
uninterrupted one ends.

For a network without BatchNorm (a linear classifier on tiny_task's images, batches of 19 that split
10 / 9 and a last batch of one sample), two processes give the weights of one up to float rounding, by DDP
and by the explicit all-reduce of a step function: each rank's loss weighted by its part of the batch.
Not claimed for the networks above: BatchNorm normalises each rank's part of the batch with its own
statistics, so two processes are close to one, not equal.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import supernet_helpers as h
import torch
from task_helpers import assert_close

from edgenas.train.distributed import share

# supernet: 21 samples, 3 steps of batch 8 an epoch, the last batch (5) splits 3 / 2; stand-alone: 7 samples in
# batches of 3 (2 / 1), the last one sample: rank 1 runs it again with weight 0
SAMPLES = {"supernet": 21, "alone": 7}
CONFIG = h.FLOW.replace("train_samples: 24", f"train_samples: {SAMPLES['supernet']}")
CONFIG_ALONE = h.FLOW.replace("train_samples: 24", f"train_samples: {SAMPLES['alone']}").replace("batch_size: 8",
                                                                                                  "batch_size: 3")
STOP_AT = (1, 1)  # the interrupted supernet run stops after the first step of its second epoch


# ---- the rule that splits a batch -------------------------------------------------------------------------
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shares_are_disjoint_cover_the_batch_and_weigh_its_mean(world) -> None:
    for n in range(1, 12):
        idx = list(range(100, 100 + n))
        parts = [share(idx, r, world) for r in range(world)]
        real = [p for p, w in parts if w > 0]
        assert sorted(i for p in real for i in p) == idx  # disjoint, covering
        # w_r = n_r * W / n, so (1 / W) sum_r w_r * (mean loss of rank r) is the batch's mean loss
        for p, w in parts:
            assert w == pytest.approx(len(p) * world / n) or (w == 0 and n < world)
        assert sum(w for _, w in parts) == pytest.approx(world)
        for p, w in parts:
            assert p  # a rank never runs an empty batch (it could not take part in the all-reduce)
            if w == 0:
                assert n < world and p == idx[:1]


def test_more_processes_than_gpus_is_one_clear_line(monkeypatch) -> None:
    from edgenas.errors import ConfigError
    from edgenas.train import distributed

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a machine with one GPU, as torch sees it
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(distributed, "_current", None)
    with pytest.raises(ConfigError, match="no GPU of its own .1 GPU.s. here.*--nproc_per_node") as e:
        distributed.current()
    assert "\n" not in str(e.value)
    assert distributed._current is None  # nothing was set up


# ---- the workers' script ----------------------------------------------------------------------------------
class Linear(torch.nn.Module):
    """No BatchNorm: its gradient over a batch is the mean of per-sample gradients, however it is split."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(256, 4)

    def forward(self, x):
        return (self.fc(x.flatten(1)),)


def _linear_runs(out: Path, rank: int) -> None:
    """The linear classifier trained by two processes (DDP, and a step function) and, on rank 0, by one."""
    from tiny_task import BlobTask

    from edgenas.train import distributed
    from edgenas.train.recipe import TrainRecipe
    from edgenas.train.trainer import Trainer

    recipe = TrainRecipe(epochs=1, batch_size=19, lr=0.5, optimizer="sgd", seed=3, threads=1)
    task = BlobTask()
    data = task.data((16, 16), seed=3)

    def train(folder: str, single: bool, step_fn: bool) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = Linear()
        t = Trainer(model, task, data, recipe, out / folder, identity={}, device=torch.device("cpu"))
        if single:
            t.dist = distributed.SINGLE
        if step_fn:
            def step(inputs, target, _):
                loss = task.loss(model(*inputs), target)
                loss.backward()
                return loss.detach()

            t.step_fn = step
        t.run()
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    for step_fn in (False, True):
        torch.save(train(f"lin{step_fn}", False, step_fn), out / f"linear_{step_fn}_rank{rank}.pt")
        if rank == 0:
            torch.save(train(f"lin1{step_fn}", True, step_fn), out / f"linear_{step_fn}_single.pt")


def _worker(out: Path, cfg: str, cfg_alone: str) -> None:
    import torch.distributed as td

    import edgenas.train.run as run_mod
    import edgenas.train.supernet.run as sn_mod
    from edgenas.train import distributed
    from edgenas.train.run import make_candidate, train_candidate
    from edgenas.train.supernet.run import make_setup, train_supernet
    from edgenas.train.supernet.supernet import Supernet
    from edgenas.train.trainer import Trainer

    d = distributed.current()
    assert d.active and d.world == 2 and td.get_backend() == "gloo"
    _linear_runs(out, d.rank)
    log: list = []  # sample indices read, then ("step", epoch, batch) after each step's reads
    calls: list = []  # (arch_id, resolution) of every sub-network run
    seen: dict = {}

    class Watched(Trainer):  # records; stops where asked (as a Ctrl-C would, on every rank at the same step)
        stop_at: tuple[int, int] | None = None

        def run(self):
            seen["trainer"] = self
            return super().run()

        def _step(self, b, batch, weight=1.0):
            super()._step(b, batch, weight)
            log.append(("step", self.epoch, b))

        def _report(self, done=False):
            super()._report(done)
            if (self.epoch, self.step_in_epoch) == Watched.stop_at:
                raise KeyboardInterrupt

    class Recorded(Supernet):
        def run(self, g, *inputs):
            calls.append((g.arch_id, list(inputs[0].shape[-2:])))
            return super().run(g, *inputs)

    class Reads(torch.utils.data.Dataset):
        def __init__(self, ds):
            self.ds = ds

        def __len__(self):
            return len(self.ds)

        def __getitem__(self, i):
            log.append(int(i))
            return self.ds[i]

    def record_reads(task):
        data = task.data

        def recorded(*a, **k):
            got = data(*a, **k)
            return dataclasses.replace(got, train=Reads(got.train))

        task.data = recorded

    run_mod.Trainer = sn_mod.Trainer = Watched
    sn_mod.Supernet = Recorded

    def dump(name: str) -> None:
        state = {k: v.detach().clone() for k, v in seen["trainer"].module.state_dict().items()}
        torch.save(state, out / f"{name}_rank{d.rank}.pt")
        (out / f"{name}_rank{d.rank}.json").write_text(json.dumps({"log": log, "calls": calls}))
        log.clear()
        calls.clear()

    c = make_candidate(cfg_alone)
    record_reads(c.task)
    train_candidate(c, out / "alone")
    dump("alone")

    setup = make_setup(cfg)
    record_reads(setup.task)
    train_supernet(setup, out / "supernet")
    dump("supernet")

    Watched.stop_at = STOP_AT
    try:
        train_supernet(make_setup(cfg), out / "cut")
    except KeyboardInterrupt:
        pass
    td.barrier()  # rank 0's checkpoint is written before anyone reads it
    Watched.stop_at = None
    train_supernet(make_setup(cfg), out / "cut", resume=True)
    dump("cut")

    # a few-shot supernet (two parts of one epoch each) under torchrun: the parts train one after the other
    train_supernet(make_setup(cfg, split="head2_block"), out / "split")
    dump("split")  # the last part's trainer


# ---- the run and what it shows ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("torchrun")
    cfg, cfg_alone = h.write(out, CONFIG), h.write(out, CONFIG_ALONE, "alone.yaml")
    env = {**os.environ, "EDGENAS_DATA_CACHE": str(out / "cache"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", __file__, str(out),
           str(cfg), str(cfg_alone)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _record(run: Path, name: str, rank: int) -> dict:
    return json.loads((run / f"{name}_rank{rank}.json").read_text())


def _checkpoint(run: Path, folder: str) -> dict:
    return torch.load(run / folder / "checkpoint.pt", map_location="cpu", weights_only=True)


@pytest.mark.parametrize("name,folder", [("alone", "alone"), ("supernet", "supernet")])
def test_both_ranks_end_with_the_same_weights_as_rank_0s_checkpoint(run, name, folder) -> None:
    r0, r1 = _state(run / f"{name}_rank0.pt"), _state(run / f"{name}_rank1.pt")
    assert _same(r0, r1)
    ckpt = _checkpoint(run, folder)
    assert _same(ckpt["model"], r0)
    assert (ckpt["epoch"], ckpt["step_in_epoch"]) == (2, 0)
    record = json.loads((run / folder / ("run.json" if name == "alone" else "supernet.json")).read_text())
    assert record["status"] == "done" and record["processes"] == 2 and len(record["history"]) == 2


@pytest.mark.parametrize("name", ["alone", "supernet"])
def test_each_step_splits_the_single_process_batch_between_the_ranks(run, name) -> None:
    from edgenas.train.trainer import epoch_order

    recipe = _checkpoint(run, name)["recipe"]
    steps: list[dict] = []
    for rank in (0, 1):
        got, reads = {}, []
        for item in _record(run, name, rank)["log"]:
            if isinstance(item, list):  # ("step", epoch, batch) came back from JSON as a list
                got[(item[1], item[2])] = reads
                reads = []
            else:
                reads.append(item)
        steps.append(got)
    assert steps[0].keys() == steps[1].keys() == {(e, b) for e in range(2) for b in range(3)}
    bs = recipe["batch_size"]
    for e in range(2):
        order = epoch_order(SAMPLES[name], recipe["seed"], e).tolist()
        for b in range(3):
            a, c = steps[0][(e, b)], steps[1][(e, b)]
            batch = order[b * bs:(b + 1) * bs]
            if len(batch) == 1:  # nothing left for rank 1: it runs rank 0's sample (with weight 0)
                assert a == c == batch
                steps[1][(e, b)] = []
            else:
                assert not set(a) & set(c) and sorted(a + c) == sorted(batch)
        got = sorted(i for b in range(3) for r in (0, 1) for i in steps[r][(e, b)])
        assert got == list(range(SAMPLES[name]))


@pytest.mark.parametrize("step_fn", [False, True], ids=["ddp", "step_fn"])
def test_without_batchnorm_two_processes_train_what_one_trains(run, step_fn) -> None:
    r0, r1 = _state(run / f"linear_{step_fn}_rank0.pt"), _state(run / f"linear_{step_fn}_rank1.pt")
    one = _state(run / f"linear_{step_fn}_single.pt")
    torch.manual_seed(0)
    init = Linear().state_dict()
    assert _same(r0, r1)
    for k in one:
        assert not torch.allclose(one[k], init[k], atol=1e-3)  # it trained
        assert_close(r0[k], one[k], rtol=1e-5, atol=1e-6)


def test_every_rank_runs_the_same_sub_networks_at_every_step(run) -> None:
    c0, c1 = _record(run, "supernet", 0)["calls"], _record(run, "supernet", 1)["calls"]
    assert c0 == c1
    # sandwich with one random sub-network: largest, smallest, random per step (6 steps), plus validation
    assert len(c0) >= 18 and len({a for a, _ in c0}) >= 4 and {tuple(r) for _, r in c0} == {(16, 16), (8, 8)}


def test_a_run_interrupted_and_resumed_under_torchrun_ends_where_the_uninterrupted_one_ends(run) -> None:
    assert _same(_state(run / "cut_rank0.pt"), _state(run / "cut_rank1.pt"))
    a, b = _checkpoint(run, "supernet"), _checkpoint(run, "cut")
    assert _same(a["model"], b["model"]) and a["history"] == b["history"]
    assert _record(run, "cut", 0)["calls"] == _record(run, "cut", 1)["calls"]


def test_a_split_supernet_trains_its_parts_in_step_on_both_ranks(run) -> None:
    last = run / "split" / "head2_block=dsconv3x3"
    r0, r1 = _state(run / "split_rank0.pt"), _state(run / "split_rank1.pt")
    assert _same(r0, r1) and _same(_checkpoint(run, "split/head2_block=dsconv3x3")["model"], r0)
    assert json.loads((last / "supernet.json").read_text())["processes"] == 2
    top = json.loads((run / "split" / "supernet.json").read_text())
    assert top["status"] == "done" and set(top["results"]) == {"head2_block=conv3x3", "head2_block=dsconv3x3"}
    assert _record(run, "split", 0)["calls"] == _record(run, "split", 1)["calls"]


if __name__ == "__main__":
    _worker(Path(sys.argv[1]), sys.argv[2], sys.argv[3])

