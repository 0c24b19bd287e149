"""Structured pruning (edgenas.graph.channels, edgenas.export.prune) against independent truths.

- Zeroing: the pruned module must compute what the unpruned module computes when every removed channel is
  zeroed at its source (weights, bias, BatchNorm gamma and beta of every weighted op writing that channel):
  a wrong group (an add partner left out, a consumer not narrowed) breaks shape inference or this equality.
- The pruned Graph's float32 TFLite file (writer, folded weights) in LiteRT's reference kernels equals the
  pruned GraphModule.
- Scores against a brute-force numpy loop over channels and the weighted ops that write them; Taylor with
  gradients from a plain `loss.backward()`.
- Vela measures the pruned Graph: fewer MACs, no more cycles.
- Rounded widths against a brute-force nearest multiple.
"""

from __future__ import annotations

import copy
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from int8_helpers import builder_tests

from edgenas.errors import ConfigError, GraphError
from edgenas.export.prune import (
    DEFAULT_ROUND_TO,
    channel_scores,
    keep_indices,
    plan_widths,
    prune_and_finetune,
    prune_module,
)
from edgenas.export.ptq import to_float_tflite
from edgenas.graph.blocks import BlockArgs, apply_block, upsample
from edgenas.graph.channels import channel_groups, pruned_graph, rounded_width
from edgenas.graph.ir import WEIGHTED_OPS, Graph
from edgenas.graph.networks import STAGES
from edgenas.hardware.profile import load_profile
from edgenas.hardware.vela import VelaEvaluator
from edgenas.space.space import load_space
from edgenas.train.builder import GraphModule
from edgenas.train.recipe import TrainRecipe

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from tiny_task import BlobTask, tiny_graph

trained_like = builder_tests.trained_like


def flow(genotype: str = "default", res: tuple[int, int] = (16, 16)) -> Graph:
    space = load_space("flow_head_upsample")
    return space.build(space.default if genotype == "default" else space.parse_genotype(genotype), res)


def shuffle_d2s_tconv() -> Graph:
    """Channel shuffle as reshape/transpose, a depth_to_space upsampler and a transposed conv."""
    g = Graph("odd")
    x = g.add_input("input", (1, 8, 8, 3))
    y = apply_block(g, "conv3x3", x, "stem", BlockArgs(16, 1, "relu"))
    y = apply_block(g, "shuffle", y, "shuf", BlockArgs(16, 1, "relu", "transpose"))
    y = apply_block(g, "conv1x1", y, "mid", BlockArgs(12, 1, "relu6"))
    y = upsample(g, y, "up", "transposed_conv")
    y = apply_block(g, "dsconv3x3", y, "ds", BlockArgs(8, 1, "hard_swish"))
    y = upsample(g, y, "up2", "depth_to_space")
    g.mark_output(g.add("conv2d", "out", [y], kernel=3, stride=1, out_channels=2))
    return g


def classifier() -> Graph:
    widths = {**STAGES.widths, "stem": 8, "stages": 2, "units_per_stage": 2, "classes": 5}
    params = {**{k: p.default for k, p in STAGES.params.items()}, "stage_block": "resnet",
              "stage1_block": "mbconv_e3_k5"}
    return STAGES.build(params, widths, 3, (16, 16))


NETWORKS = {
    "flow_default": lambda: flow(),
    "flow_mbconv": lambda: flow("backbone=mbconv_e4,head1_block=mbconv_e4"),
    "flow_resnet_dsconv": lambda: flow("backbone=resnet,head1_block=dsconv3x3"),
    "shuffle_d2s_tconv": shuffle_d2s_tconv,
    "classifier": classifier,
    "tiny": tiny_graph,
}


def module_of(graph: Graph, seed: int = 0) -> GraphModule:
    torch.manual_seed(seed)
    return trained_like(GraphModule(graph), seed)


def random_keep(graph: Graph, seed: int) -> dict[str, tuple[int, ...]]:
    rng = np.random.default_rng(seed)
    keep = {}
    for g in channel_groups(graph):
        if g.prunable and g.channels > 1:
            width = int(rng.integers(1, g.channels))
            keep[g.name] = tuple(sorted(int(i) for i in rng.choice(g.channels, width, replace=False)))
    return keep


def writers_of(graph: Graph, tensors: set[str]) -> list[str]:
    """Weighted ops whose output tensor is one of `tensors` (read off the graph, not the group)."""
    return [op.name for op in graph.ops if op.kind in WEIGHTED_OPS and op.outputs[0] in tensors]


def clone(module: GraphModule) -> GraphModule:
    """A copy with its own weights (a Graph holds mapping proxies, which deepcopy cannot copy)."""
    m = GraphModule(module.graph, batchnorm=any(getattr(x, "bn", None) is not None for x in module.layers.values()))
    m.load_state_dict(copy.deepcopy(module.state_dict()))
    return m.train(module.training)


def zeroed(module: GraphModule, keep: dict[str, tuple[int, ...]]) -> GraphModule:
    m = clone(module)
    groups = {g.name: g for g in channel_groups(module.graph)}
    with torch.no_grad():
        for name, idx in keep.items():
            gone = sorted(set(range(groups[name].channels)) - set(idx))
            for op_name in writers_of(module.graph, set(groups[name].tensors)):
                layer = m.layer(op_name)
                if isinstance(layer.conv, torch.nn.ConvTranspose2d):
                    layer.conv.weight[:, gone] = 0
                else:
                    layer.conv.weight[gone] = 0
                for p in (layer.conv.bias, *((layer.bn.weight, layer.bn.bias) if layer.bn is not None else ())):
                    if p is not None:
                        p[gone] = 0
    return m


def sample(graph: Graph, n: int = 2, seed: int = 5) -> torch.Tensor:
    _, h, w, c = graph.shape(graph.inputs[0])
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def run_ref(model: bytes, x: torch.Tensor) -> list[np.ndarray]:
    it = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x.permute(0, 2, 3, 1).numpy())
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


# ---- groups ------------------------------------------------------------------------------------------------

def test_flow_default_groups() -> None:
    """By hand from the network: ShuffleNet branch pw1 -> dw -> pw2 (pw2 enters a split), the stem and head0
    feed the Head1 concat, the predict convs are outputs; the two head convs and the pw1s are free."""
    groups = {g.name: g for g in channel_groups(flow())}
    assert sorted(n for n, g in groups.items() if g.prunable) == sorted(
        [f"backbone.unit{i}.pw1" for i in range(3)] + ["head1.block.conv", "head2.block.conv"])
    assert groups["backbone.unit1.pw1"].channelwise == ("backbone.unit1.dw",)
    assert groups["backbone.unit1.pw1"].consumers == ("backbone.unit1.pw2",)
    assert groups["head1.block.conv"].consumers == ("head1.predict", "head2.block.conv")
    assert "concat" in groups["stem.conv"].blocked and "split" in groups["backbone.unit0.pw2"].blocked
    assert "graph output" in groups["head2.predict"].blocked


def test_residual_and_depthwise_groups() -> None:
    groups = {g.name: g for g in channel_groups(flow("backbone=resnet,head1_block=mbconv_e4"))}
    res = groups["backbone.unit0.conv2"]  # unit0 downsamples (1x1 shortcut); units 1, 2 add the identity
    assert res.prunable
    assert set(res.producers) == {"backbone.unit0.conv2", "backbone.unit0.short", "backbone.unit1.conv2",
                                  "backbone.unit2.conv2"}
    assert {"backbone.unit0.add", "backbone.unit1.add", "backbone.unit2.add"} <= set(res.tensors)
    expand = groups["head1.block.expand"]
    assert expand.prunable and expand.channelwise == ("head1.block.dw",) and expand.channels == 80 * 4


@pytest.mark.parametrize("name", NETWORKS)
def test_group_invariants(name: str) -> None:
    """Every tensor of a group has the group's width; a prunable group touches no graph input/output and
    no op that moves channels; every weighted op reading one of its tensors is a listed consumer."""
    graph = NETWORKS[name]()
    for g in channel_groups(graph):
        tensors = set(g.tensors)
        assert {graph.shape(t)[-1] for t in tensors} == {g.channels}
        readers = [op for op in graph.ops if tensors & set(op.inputs)]
        if g.prunable:
            assert not tensors & set(graph.inputs) and not tensors & set(graph.outputs)
            assert not [op for op in readers if op.kind in ("concat", "split", "reshape", "transpose",
                                                            "depth_to_space")]
            assert set(writers_of(graph, tensors)) == set(g.producers) | set(g.channelwise)
            assert {op.name for op in readers if op.kind in ("conv2d", "transpose_conv2d", "fully_connected")} \
                == set(g.consumers)


# ---- the pruned network -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NETWORKS)
def test_pruned_module_equals_zeroed_original(name: str) -> None:
    graph = NETWORKS[name]()
    module = module_of(graph)
    keep = random_keep(graph, seed=3)
    assert keep, "nothing prunable"
    pruned = prune_module(module, keep)
    assert pruned.graph.macs < graph.macs
    for g in channel_groups(pruned.graph):  # the IR inferred the new widths
        if g.name in keep:
            assert g.channels == len(keep[g.name])
    x = sample(graph)
    with torch.no_grad():
        want, got = zeroed(module, keep)(x), pruned(x)
        unzeroed = module(x)
    for w, p in zip(want, got):
        torch.testing.assert_close(p, w, rtol=1e-5, atol=1e-5)
    assert any(not torch.allclose(u, w, atol=1e-3) for u, w in zip(unzeroed, want))  # the zeroing mattered


def test_pruned_module_without_batchnorm() -> None:
    """Convs with a bias instead of BatchNorm: the bias is sliced with the filters."""
    graph = flow("backbone=resnet,head1_block=mbconv_e4")
    torch.manual_seed(0)
    module = GraphModule(graph, batchnorm=False).eval()
    keep = random_keep(graph, seed=6)
    x = sample(graph)
    with torch.no_grad():
        for w, p in zip(zeroed(module, keep)(x), prune_module(module, keep)(x)):
            torch.testing.assert_close(p, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NETWORKS)
def test_pruned_graph_float_tflite_equals_module(name: str) -> None:
    graph = NETWORKS[name]()
    pruned = prune_module(module_of(graph), random_keep(graph, seed=4))
    x = sample(graph, n=1)
    with torch.no_grad():
        want = [builder_tests.nhwc(t) for t in pruned(x)]
    got = run_ref(to_float_tflite(pruned), x)
    assert max(float(np.max(np.abs(g - w))) for g, w in zip(got, want)) < 1e-4


def test_unpruned_keep_is_identity_and_bad_requests_fail() -> None:
    graph = flow("backbone=mbconv_e4,head1_block=dsconv3x3")
    module = module_of(graph)
    full = {g.name: tuple(range(g.channels)) for g in channel_groups(graph) if g.prunable}
    same = prune_module(module, full)
    assert same.graph.fingerprint() == graph.fingerprint()
    x = sample(graph)
    with torch.no_grad():
        for a, b in zip(module(x), same(x)):
            assert torch.equal(a, b)
    with pytest.raises(GraphError, match="stem.conv.*not prunable.*concat"):
        pruned_graph(graph, {"stem.conv": 8})
    with pytest.raises(GraphError, match="width must be an integer in 1..64"):
        pruned_graph(graph, {"backbone.unit0.expand": 65})
    with pytest.raises(GraphError, match="no such channel group"):
        pruned_graph(graph, {"nope": 1})
    with pytest.raises(ConfigError, match="distinct"):
        prune_module(module, {"backbone.unit0.expand": (1, 1)})


def test_vela_measures_the_pruned_graph() -> None:
    graph = flow("backbone=mbconv_e4,head1_block=mbconv_e4", (32, 32))
    module = module_of(graph)
    widths = plan_widths(graph, 0.5)
    pruned = prune_module(module, keep_indices(channel_scores(module, "l1"), widths)).graph
    ev = VelaEvaluator(load_profile("ethos-u55-256"))
    before, after = ev.evaluate(graph, per_layer=False), ev.evaluate(pruned, per_layer=False)
    assert before.status == after.status == "ok", (before.error, after.error)
    assert after.metrics["macs"] < before.metrics["macs"]
    assert after.metrics["cycles_total"] <= before.metrics["cycles_total"] * (1 + 1e-4)
    assert after.metrics["npu_ops"] == before.metrics["npu_ops"] and after.metrics["cpu_ops"] == 0


# ---- widths ------------------------------------------------------------------------------------------------

def test_rounded_width_against_brute_force() -> None:
    for round_to in (1, 4, 8, 16):
        for channels in range(1, 70):
            for ratio in (0.1, 0.25, 0.3, 0.5, 0.6, 0.75, 0.9, 1.0):
                want = channels
                if channels > round_to:
                    target = channels * ratio
                    multiples = range(round_to, 2 * channels + round_to, round_to)
                    nearest = min(multiples, key=lambda m: (abs(m - target), -m))
                    want = min(nearest, channels)
                assert rounded_width(channels, ratio, round_to) == want, (channels, ratio, round_to)
    with pytest.raises(GraphError, match="keep_ratio"):
        rounded_width(8, 0.0, 8)


def test_planned_widths_are_multiples() -> None:
    graph = flow("backbone=mbconv_e6,head1_block=mbconv_e4")
    for round_to in (DEFAULT_ROUND_TO, 16):
        widths = plan_widths(graph, 0.4, round_to)
        groups = {g.name: g for g in channel_groups(graph)}
        assert widths and set(widths) == {n for n, g in groups.items() if g.prunable}
        for name, w in widths.items():
            assert w % round_to == 0 or w == groups[name].channels <= round_to
            assert w <= groups[name].channels
        assert any(w < groups[n].channels for n, w in widths.items())


# ---- scores ------------------------------------------------------------------------------------------------

def brute_scores(module: GraphModule, method: str, grads: dict[str, np.ndarray] | None = None) -> dict[str, list]:
    out = {}
    for g in channel_groups(module.graph):
        if not g.prunable:
            continue
        scores = []
        for c in range(g.channels):
            s = 0.0
            for op_name in writers_of(module.graph, set(g.tensors)):
                layer = module.layer(op_name)
                w = layer.conv.weight.detach().numpy().astype(np.float64)
                transposed = isinstance(layer.conv, torch.nn.ConvTranspose2d)
                if method == "bn":
                    s += abs(float(layer.bn.weight.detach()[c]))
                    continue
                if method == "taylor":
                    w = w * grads[op_name]
                s += float(np.sum(np.abs(w[:, c] if transposed else w[c])))
            scores.append(s)
        out[g.name] = scores
    return out


@pytest.mark.parametrize("method", ["l1", "bn"])
@pytest.mark.parametrize("name", ["flow_mbconv", "shuffle_d2s_tconv", "classifier"])
def test_scores_against_brute_force(method: str, name: str) -> None:
    module = module_of(NETWORKS[name]())
    got = channel_scores(module, method)
    want = brute_scores(module, method)
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5)


def test_taylor_against_brute_force() -> None:
    graph = tiny_graph()
    module = module_of(graph)
    task = BlobTask()
    data = task.data((16, 16), seed=0)
    batches = [(torch.stack([data.train[i][0] for i in range(b, b + 8)]),
                torch.stack([data.train[i][1] for i in range(b, b + 8)])) for b in (0, 8, 16)]
    got = channel_scores(module, "taylor", task=task, data=batches)
    ref = clone(module).eval()
    ref.zero_grad()
    for x, y in batches:
        task.loss(ref(x), y).backward()  # .grad accumulates: the sum over the batches
    grads = {op.name: ref.layer(op.name).conv.weight.grad.numpy().astype(np.float64)
             for op in graph.ops if op.kind in ("conv2d", "depthwise_conv2d")}
    want = brute_scores(module, "taylor", grads)
    assert set(got) == set(want) == {"stem.conv", "unit.pw"}
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4)
    with pytest.raises(ConfigError, match="Taylor"):
        channel_scores(module, "taylor")
    with pytest.raises(ConfigError, match="BatchNorm"):
        channel_scores(GraphModule(graph, batchnorm=False), "bn")


def test_keep_indices_takes_the_highest() -> None:
    scores = {"a": np.array([0.5, 3.0, 1.0, 3.0, 0.1])}
    assert keep_indices(scores, {"a": 2}) == {"a": (1, 3)}
    assert keep_indices(scores, {"a": 3}) == {"a": (1, 2, 3)}


# ---- fine-tuning -------------------------------------------------------------------------------------------

def test_prune_and_finetune_runs(tmp_path: Path) -> None:
    graph = tiny_graph()
    module = module_of(graph)
    task = BlobTask()
    data = task.data((16, 16), seed=0)
    recipe = TrainRecipe(epochs=2, batch_size=16, lr=5e-3, threads=1)
    result = prune_and_finetune(module, task, data, recipe, tmp_path / "ft", method="taylor", keep_ratio=0.5,
                                round_to=4, taylor_batches=2)
    assert result.widths == {"stem.conv": 4, "unit.pw": 8}
    assert [g.channels for g in channel_groups(result.graph) if g.prunable] == [4, 8]
    assert (tmp_path / "ft" / "best.pt").exists() and len(result.train.history) == 2
    assert math.isfinite(result.metric_before) and result.metric == result.train.best_metric
    # the fine-tuned weights are not the copied ones
    copied = prune_module(module, result.keep)
    assert not torch.equal(copied.layer("unit.pw").conv.weight, result.module.layer("unit.pw").conv.weight.cpu())
    with pytest.raises(ConfigError, match="already holds a training run"):
        prune_and_finetune(module, task, data, recipe, tmp_path / "ft", keep_ratio=0.5, round_to=4)
    with pytest.raises(GraphError, match="not prunable"):
        prune_and_finetune(module, task, data, recipe, tmp_path / "ft2", widths={"fc": 2})
    assert not (tmp_path / "ft2").exists()


def test_prune_and_finetune_resumes_to_the_same_weights(tmp_path: Path) -> None:
    """An interrupted fine-tune, resumed, ends with the weights of an uninterrupted one, bit for bit."""
    torch.set_num_threads(1)
    graph = tiny_graph()
    task = BlobTask()
    data = task.data((16, 16), seed=0)
    recipe = TrainRecipe(epochs=2, batch_size=16, lr=5e-3, threads=1)
    kw = dict(method="l1", keep_ratio=0.5, round_to=4)
    whole = prune_and_finetune(module_of(graph), task, data, recipe, tmp_path / "whole", **kw)

    def stop_inside_epoch_2(p) -> None:
        if (p.epoch, p.step) == (1, 1):
            raise KeyboardInterrupt  # what Ctrl-C and SIGTERM (through edgenas.processes) raise

    with pytest.raises(KeyboardInterrupt):
        prune_and_finetune(module_of(graph), task, data, recipe, tmp_path / "cut", on_progress=stop_inside_epoch_2,
                           **kw)
    with pytest.raises(ConfigError, match="already holds a training run"):
        prune_and_finetune(module_of(graph), task, data, recipe, tmp_path / "cut", **kw)
    seen: list[tuple[int, int]] = []
    resumed = prune_and_finetune(module_of(graph), task, data, recipe, tmp_path / "cut", resume=True,
                                 on_progress=lambda p: seen.append((p.epoch, p.step)), **kw)
    assert seen and seen[0][0] == 1  # it went on from epoch 2, it did not start again
    a, b = whole.module.state_dict(), resumed.module.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.train.history == whole.train.history
    with pytest.raises(ConfigError, match="nothing to resume"):
        prune_and_finetune(module_of(graph), task, data, recipe, tmp_path / "none", resume=True, **kw)
