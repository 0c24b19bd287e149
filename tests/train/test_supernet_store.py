"""The supernet's weight store: which sub-networks share which weights, and that a training step on one
sub-network changes another's weights exactly where they are shared."""

from __future__ import annotations

import pytest
import supernet_helpers as h
import torch

from edgenas.errors import ConfigError
from edgenas.space.space import load_space
from edgenas.train.builder import GraphModule
from edgenas.train.supernet.slots import block_family, graph_slots, tensor_shapes
from edgenas.train.supernet.store import build_store
from edgenas.train.supernet.supernet import Supernet
from edgenas.train.supernet.updates import KeepUnused

RES = (16, 16)
torch.set_num_threads(1)  # the tests' tiny networks; more threads only fight over a busy machine's cores


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    space = load_space(h.write(tmp_path_factory.mktemp("s"), h.FLOW))
    store, _ = build_store(space, RES, seed=0)
    return Supernet(space, store, space.default)


def test_block_families() -> None:
    assert {block_family(b) for b in ("conv1x1", "conv3x3", "conv5x5", "conv7x7")} == {"conv"}
    assert {block_family(b) for b in ("mbconv_e4", "mbconv_e6", "mbconv_e3_k5")} == {"mbconv"}
    assert {block_family(b) for b in ("dsconv3x3", "dsconv7x7")} == {"dsconv"}
    assert len({block_family(b) for b in ("conv3x3", "dsconv3x3", "mbconv_e4", "shuffle", "resnet")}) == 5


@pytest.mark.parametrize("text", [h.FLOW, h.DIGITS], ids=["flow", "digits"])
def test_shapes_mirror_the_builder(tmp_path, text) -> None:
    """The store's shape rules against the torch builder's own modules, for every sub-network."""
    space = load_space(h.write(tmp_path, text))
    res = space.resolutions[0]
    for g in space.enumerate():
        graph = space.build(g, res)
        with torch.device("meta"):
            want = {k: tuple(v.shape) for k, v in GraphModule(graph).state_dict().items()}
        got = {f"layers.{mk}.{name}": shape for mk, (_, op) in graph_slots(graph, "x", {}).items()
               for name, shape in tensor_shapes(graph, op).items()}
        assert got == want, str(g)


def test_served_subnet_is_the_builders_network(flow) -> None:
    """Served through the store == a plain GraphModule holding a copy of the same weights (train mode:
    batch statistics; eval mode: the store's running statistics)."""
    x = torch.randn(3, 6, *RES, generator=torch.Generator().manual_seed(1))
    for text in ("backbone=resnet,head1_block=conv5x5,predict_kernel=5,widths.head1=12",
                 "backbone=shufflenet,head1_block=shuffle,head2_block=dsconv3x3",
                 "backbone=mbconv_e6,head1_block=mbconv_e4,widths.head1=8"):
        g = flow.space.parse_genotype(text)
        plain = flow.subnet_module(g, RES)
        for mode in (True, False):
            flow.train(mode)
            plain.train(mode)
            with torch.no_grad():
                a, b = flow.run(g, x), plain(x)
            assert len(a) == 3 and all(torch.allclose(p, q, atol=1e-6, rtol=0) for p, q in zip(a, b)), text


def _w(flow, text: str, layer: str) -> torch.Tensor:
    g = flow.space.parse_genotype(text)
    return flow.tensors(g, RES)[f"layers.{layer}.conv.weight"]


def test_what_shares_and_what_does_not(flow) -> None:
    c3 = _w(flow, "head1_block=conv3x3,widths.head1=12", "head1__block__conv")
    c5 = _w(flow, "head1_block=conv5x5,widths.head1=12", "head1__block__conv")
    assert c3.shape[2:] == (3, 3) and c5.shape[2:] == (5, 5)
    assert torch.equal(c3, c5[:, :, 1:4, 1:4])  # the 3x3 head is the 5x5's centre
    e4 = _w(flow, "head1_block=mbconv_e4", "head1__block__expand")
    e6 = _w(flow, "head1_block=mbconv_e6", "head1__block__expand")
    assert e4.shape[0] * 6 == e6.shape[0] * 4 and torch.equal(e4, e6[: e4.shape[0]])  # e4 = e6's first channels
    narrow = _w(flow, "head1_block=conv3x3,widths.head1=8", "head1__block__conv")
    assert torch.equal(narrow, c3[:8])  # width 8 = the first 8 of 12 channels
    k3 = _w(flow, "predict_kernel=3", "head2__predict")
    k5 = _w(flow, "predict_kernel=5", "head2__predict")
    assert torch.equal(k3, k5[:, :, 1:4, 1:4])
    def head1_slots(text: str) -> set[str]:
        g = flow.space.parse_genotype(text)
        graph = flow.space.build(g, RES)
        slots = graph_slots(graph, "flow", flow.space.params(g))
        return {slot for mk, (slot, _) in slots.items() if mk.startswith("head1__block")}

    assert head1_slots("head1_block=conv3x3") == head1_slots("head1_block=conv5x5")
    assert not head1_slots("head1_block=conv3x3") & head1_slots("head1_block=dsconv3x3")
    assert not head1_slots("head1_block=dsconv3x3") & head1_slots("head1_block=mbconv_e4")
    assert head1_slots("head1_block=mbconv_e4") == head1_slots("head1_block=mbconv_e6")
    # dsconv's depthwise and mbconv's depthwise carry the same op name but are different kinds of block
    ds = _w(flow, "head1_block=dsconv3x3", "head1__block__dw")
    mb = _w(flow, "head1_block=mbconv_e4", "head1__block__dw")
    assert ds.untyped_storage().data_ptr() != mb.untyped_storage().data_ptr()
    resnet = _w(flow, "backbone=resnet", "backbone__unit1__conv1")
    shuffle = _w(flow, "backbone=shufflenet", "backbone__unit1__pw1")
    assert resnet.untyped_storage().data_ptr() != shuffle.untyped_storage().data_ptr()
    mb4 = _w(flow, "backbone=mbconv_e4", "backbone__unit1__expand")
    mb6 = _w(flow, "backbone=mbconv_e6", "backbone__unit1__expand")
    assert torch.equal(mb4, mb6[: mb4.shape[0]])  # mbconv backbones share, the others do not


def test_a_step_on_one_subnet_changes_another_exactly_where_shared(flow) -> None:
    """AdamW with weight decay: without KeepUnused the unused ring of a 5x5 slot would decay too."""
    space = flow.space
    a = space.parse_genotype("head1_block=conv3x3,widths.head1=8,predict_kernel=3")
    b = space.parse_genotype("head1_block=conv5x5,widths.head1=12,predict_kernel=5")
    other = space.parse_genotype("head1_block=dsconv3x3")
    before = {k: v.detach().clone() for k, v in flow.store.state_dict().items()}
    b_before = {k: v.detach().clone() for k, v in flow.tensors(b, RES).items()}
    other_before = {k: v.detach().clone() for k, v in flow.tensors(other, RES).items()}
    opt = torch.optim.AdamW(flow.store.parameters(), lr=0.01, weight_decay=0.1)
    keep = KeepUnused(flow.store, opt)
    flow.train()
    for _ in range(2):  # the second step has Adam momentum from the first
        opt.zero_grad(set_to_none=True)
        keep.begin()
        x = torch.randn(2, 6, *RES)
        sum(o.square().mean() for o in flow.run(a, x)).backward()
        opt.step()
    b_after = flow.tensors(b, RES)
    w0, w1 = b_before["layers.head1__block__conv.conv.weight"], b_after["layers.head1__block__conv.conv.weight"]
    shared = torch.zeros_like(w0, dtype=torch.bool)
    shared[:8, :, 1:4, 1:4] = True  # A's 3x3 kernel, 8 output channels; input channels alike
    assert not torch.equal(w0[shared], w1[shared])
    assert torch.equal(w0[~shared], w1[~shared])
    p0, p1 = b_before["layers.head1__predict.conv.weight"], b_after["layers.head1__predict.conv.weight"]
    assert not torch.equal(p0[:, :8, 1:4, 1:4], p1[:, :8, 1:4, 1:4])
    ring = torch.ones_like(p0, dtype=torch.bool)
    ring[:, :8, 1:4, 1:4] = False
    assert torch.equal(p0[ring], p1[ring])
    # the dsconv head's own weights did not move; its shared backbone did
    after = flow.tensors(other, RES)
    for own in ("head1__block__dw", "head1__block__pw"):
        assert torch.equal(other_before[f"layers.{own}.conv.weight"], after[f"layers.{own}.conv.weight"])
    assert not torch.equal(other_before["layers.stem__conv.conv.weight"], after["layers.stem__conv.conv.weight"])
    flow.store.load_state_dict(before)


def test_a_genotype_outside_the_supernet_is_refused(flow, tmp_path) -> None:
    other = load_space(h.write(tmp_path, h.FLOW.replace("head2: 8}", "head2: 16}")))
    with pytest.raises(ConfigError, match="not in the supernet's space"):
        flow.run(other.default, torch.randn(1, 6, *RES))
