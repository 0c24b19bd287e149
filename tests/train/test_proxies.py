"""Training-free proxies against truths computed another way: synflow of a linear chain equals (number of
weight layers) x R by Euler's theorem for homogeneous functions; grad_norm and snip against torch.autograd
directly; naswot's kernel is singular for identical samples; every score is deterministic and leaves the
module as it was."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from tiny_task import BlobTask, tiny_graph

from edgenas.graph.ir import Graph
from edgenas.train.builder import GraphModule
from edgenas.train.proxies import BASELINES, PROXIES, proxy_scores


def ce(outputs, target):
    return F.cross_entropy(outputs[0], target)


def batch(n: int = 8):
    ds = BlobTask().data((16, 16), seed=0).train
    return torch.stack([ds[i][0] for i in range(n)]), torch.stack([ds[i][1] for i in range(n)])


def test_scores_are_deterministic_finite_and_leave_the_module_unchanged() -> None:
    torch.manual_seed(0)
    m = GraphModule(tiny_graph())
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x, y = batch()
    a = proxy_scores(m, x, y, ce)
    b = proxy_scores(m, x, y, ce)
    assert set(a) == {*PROXIES, *BASELINES}
    assert {k: v for k, (v, _) in a.items()} == {k: v for k, (v, _) in b.items()}
    assert all(math.isfinite(v) for v, _ in a.values())
    after = m.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert a["params"][0] == m.graph.params and a["macs"][0] == m.graph.macs


def test_synflow_of_a_linear_chain_is_layers_times_r() -> None:
    g = Graph("chain")
    x = g.add_input("input", (1, 6, 6, 2))
    y = g.add("conv2d", "c1", [x], kernel=3, stride=1, out_channels=4, act="none")
    g.mark_output(g.add("conv2d", "predict", [y], kernel=3, stride=1, out_channels=2, act="none"))
    torch.manual_seed(1)
    m = GraphModule(g)
    with torch.no_grad():
        m.layer("predict").conv.bias.zero_()  # no bias: R is homogeneous of degree 1 in each weight tensor
        m.layer("c1").bn.bias.zero_()
    score = proxy_scores(m, torch.zeros(2, 2, 6, 6), torch.zeros(2), ce, names=("synflow",))["synflow"][0]
    mm = GraphModule(g).double().eval()
    mm.load_state_dict({k: v.abs() if v.is_floating_point() else v for k, v in m.state_dict().items()})
    with torch.no_grad():  # a forward pass only: no graph to build
        r = float(mm(torch.ones(1, 2, 6, 6, dtype=torch.float64))[0].sum())
    assert score == pytest.approx(2 * r, rel=1e-9)


def test_grad_norm_and_snip_match_autograd() -> None:
    torch.manual_seed(2)
    m = GraphModule(tiny_graph())
    x, y = batch()
    scores = proxy_scores(m, x, y, ce, names=("grad_norm", "snip"))
    m.train()
    weights = [m.layer(n).conv.weight for n in ("stem.conv", "unit.dw", "unit.pw")] + [m.layer("fc").fc.weight]
    grads = torch.autograd.grad(ce(m(x), y), weights)
    with torch.no_grad():  # the expected values only: no graph through the weights
        snip = float(sum((gr * w).abs().sum() for gr, w in zip(grads, weights)))
    assert scores["grad_norm"][0] == pytest.approx(float(sum(gr.norm() for gr in grads)), rel=1e-5)
    assert scores["snip"][0] == pytest.approx(snip, rel=1e-5)


def test_naswot_kernel_is_singular_for_identical_samples() -> None:
    torch.manual_seed(3)
    m = GraphModule(tiny_graph())
    x, y = batch(4)
    same = x[:1].repeat(4, 1, 1, 1)
    assert proxy_scores(m, same, y, ce, names=("naswot",))["naswot"][0] == -math.inf
    assert math.isfinite(proxy_scores(m, x, y, ce, names=("naswot",))["naswot"][0])
