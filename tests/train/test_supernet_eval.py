"""Sub-network evaluation: BatchNorm recalibration against statistics computed directly, exported
sub-networks against the supernet's own computation and against stand-alone evaluation, and fine-tuning
from an export with `--init-from`."""

from __future__ import annotations

from pathlib import Path

import pytest
import supernet_helpers as h
import torch
from torch import nn

from edgenas.errors import ConfigError
from edgenas.train.builder import GraphModule
from edgenas.train.run import make_candidate, train_candidate
from edgenas.train.supernet.evaluate import SubnetEvaluator, evaluate_subnets, export_subnet
from edgenas.train.supernet.recalibrate import recalibrate_bn
from edgenas.train.supernet.run import load_supernet, make_setup, train_supernet
from edgenas.train.trainer import evaluate, load_checkpoint

torch.set_num_threads(1)
RES = (16, 16)
GENOTYPES = ("backbone=resnet,head1_block=conv5x5,predict_kernel=5,widths.head1=12",
             "backbone=shufflenet,head1_block=dsconv3x3,head2_block=dsconv3x3,predict_kernel=3",
             "backbone=mbconv_e4,head1_block=mbconv_e6,widths.head1=8")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("sn")
    cfg = h.write(d, h.FLOW.replace("epochs: 2", "epochs: 1"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGENAS_DATA_CACHE", str(d / "cache"))
        train_supernet(make_setup(str(cfg)), d / "run")
    return cfg, d / "run"


@pytest.fixture(autouse=True)
def _data_cache(trained, monkeypatch):  # one data cache for the module (the run's data are generated once)
    monkeypatch.setenv("EDGENAS_DATA_CACHE", str(trained[1].parent / "cache"))


def test_recalibrated_statistics_are_those_of_the_samples(trained) -> None:
    loaded = load_supernet(trained[1])
    g = loaded.setup.space.parse_genotype(GENOTYPES[0])
    gen = torch.Generator().manual_seed(5)
    batches = [(torch.randn(4, 6, *RES, generator=gen),) for _ in range(3)]
    module = loaded.net.subnet_module(g, RES)
    probe = loaded.net.subnet_module(g, RES).train()
    seen: dict[str, list[torch.Tensor]] = {}
    for name, m in probe.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            m.register_forward_hook(lambda mod, args, out, name=name: seen.setdefault(name, []).append(args[0]))
    with torch.no_grad():
        for (x,) in batches:
            probe(x)
    assert recalibrate_bn(module, batches) == 12 and not module.training
    bns = dict(module.named_modules())
    assert len(seen) == sum(isinstance(m, nn.BatchNorm2d) for m in module.modules()) > 5
    for name, xs in seen.items():
        a = torch.cat(xs).transpose(0, 1).reshape(xs[0].shape[1], -1)  # channels x (samples * pixels)
        bn = bns[name]
        assert torch.allclose(bn.running_mean, a.mean(1), atol=1e-5, rtol=1e-5), name
        assert torch.allclose(bn.running_var, a.var(1, unbiased=True), atol=1e-5, rtol=1e-4), name


def test_exported_subnet_computes_what_the_supernet_serves(trained, tmp_path) -> None:
    cfg, run = trained
    loaded = load_supernet(run)
    space = loaded.setup.space
    x = torch.randn(2, 6, *RES, generator=torch.Generator().manual_seed(2))
    scores = evaluate_subnets(loaded, list(GENOTYPES))
    for text, score in zip(GENOTYPES, scores):
        g = space.parse_genotype(text)
        export_subnet(loaded, g, tmp_path / "sub.pt")
        state = load_checkpoint(tmp_path / "sub.pt")
        assert state["identity"]["arch_id"] == g.arch_id
        plain = GraphModule(space.build(g, RES))
        plain.load_state_dict(state["model"], strict=True)
        # eval mode with the exported (recalibrated) statistics: the stand-alone evaluation's figure
        c = make_candidate(str(cfg), text)
        val = c.task.data(RES, seed=c.recipe.seed).val
        assert evaluate(plain.eval(), c.task, val)["epe"] == pytest.approx(score.metrics["epe"], rel=1e-5)
        assert score.recalibration_seconds > 0 and score.score_seconds > 0
        plain.train()  # batch statistics: the weights alone decide
        loaded.net.train()
        with torch.no_grad():
            a, b = loaded.net.run(g, x), plain(x)
        assert all(torch.allclose(p, q, atol=1e-6, rtol=0) for p, q in zip(a, b)), text


def test_scores_are_repeatable_and_differ_between_subnets(trained) -> None:
    loaded = load_supernet(trained[1])
    a = evaluate_subnets(loaded, [GENOTYPES[0], GENOTYPES[1]])
    b = evaluate_subnets(loaded, [GENOTYPES[0]])
    assert a[0].metrics == b[0].metrics  # a fixed, seeded BatchNorm sample set
    assert a[0].metrics["epe"] != a[1].metrics["epe"]
    ev = SubnetEvaluator(loaded)
    assert sum(int(xs[0].shape[0]) for xs, _ in ev.bn_batches) == 16  # supernet.bn_samples


def test_init_from_an_export_fine_tunes_that_network(trained, tmp_path) -> None:
    cfg, run = trained
    export_subnet(run, GENOTYPES[1], tmp_path / "sub.pt")
    c = make_candidate(str(cfg), GENOTYPES[1], epochs=1)
    res = train_candidate(c, tmp_path / "ft", init_from=tmp_path / "sub.pt")
    assert res.history and res.best_metric is not None
    # the same run from scratch ends elsewhere: the start was the export's weights
    scratch = train_candidate(c, tmp_path / "scratch")
    assert scratch.history[0]["train_loss"] != res.history[0]["train_loss"]
    with pytest.raises(ConfigError, match="another network"):
        train_candidate(make_candidate(str(cfg), GENOTYPES[0], epochs=1), tmp_path / "bad",
                        init_from=tmp_path / "sub.pt")
    assert not (tmp_path / "bad").exists()
