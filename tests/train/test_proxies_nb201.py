"""benchmarks/proxies_nb201.py builds NAS-Bench-201's networks: checked against the benchmark authors' own
definition (xautodl's TinyNetwork), weight for weight, so its synflow figures are those of NAS-Bench-201."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
# `make install` installs xautodl (--no-deps, see the Makefile); a venv set up by hand without it skips this file
pytest.importorskip("xautodl", reason="xautodl is installed by `make install` (pip install --no-deps xautodl==1.0.0)")
from xautodl.models.cell_infers.tiny_network import TinyNetwork
from xautodl.models.cell_searchs.genotypes import Structure

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from proxies_nb201 import build_nb201

from edgenas.train.proxies import synflow

CELLS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|none~0|+|nor_conv_3x3~0|none~1|+|none~0|nor_conv_1x1~1|avg_pool_3x3~2|",  # node 1 is all zeros
    "|nor_conv_1x1~0|+|none~0|none~1|+|none~0|none~1|none~2|",  # the output is cut off: synflow 0
]


@pytest.fixture(autouse=True)
def _one_thread():
    """Small networks: one thread is faster than two fighting the other test worker for the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class _Logits(torch.nn.Module):
    """TinyNetwork returns (features, logits); the proxies take a tuple of the network's outputs."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        return (self.net(x)[1],)


def _pair(arch: str, classes: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    ours = build_nb201(arch, classes)
    theirs = TinyNetwork(16, 5, Structure.str2structure(arch), classes)
    # Both create their layers in the same order (stem, cells edge by edge e01 e02 e12 e03 e13 e23, residual
    # blocks conv_a conv_b shortcut, last BatchNorm, classifier): copy ours into theirs tensor by tensor.
    a, b = ours.state_dict(), theirs.state_dict()
    assert [v.shape for v in a.values()] == [v.shape for v in b.values()]
    theirs.load_state_dict(dict(zip(b, a.values(), strict=True)))
    return ours, _Logits(theirs)


@pytest.mark.parametrize("arch", CELLS)
@pytest.mark.parametrize(("classes", "side"), [(10, 8), (120, 16)])
def test_the_network_is_nas_bench_201s(arch: str, classes: int, side: int) -> None:
    ours, theirs = _pair(arch, classes)
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(1))
    for mode in (True, False):  # training mode (batch statistics) and eval mode
        ours.train(mode)
        theirs.train(mode)
        torch.testing.assert_close(ours(x)[0], theirs(x)[0], rtol=1e-5, atol=1e-6)
    s_ours = synflow(ours, x, None, None)
    s_theirs = synflow(theirs, x, None, None)
    assert s_ours == pytest.approx(s_theirs, rel=1e-9)
    assert (s_ours == 0.0) == (arch == CELLS[3])


def test_a_different_cell_is_told_apart() -> None:
    """Negative control: the same weights in a network with one edge changed give other outputs."""
    ours, _ = _pair(CELLS[0], 10)
    changed = TinyNetwork(16, 5, Structure.str2structure(CELLS[0].replace("avg_pool_3x3~1", "skip_connect~1")), 10)
    changed.load_state_dict(dict(zip(changed.state_dict(), ours.state_dict().values(), strict=True)))
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    ours.eval()
    changed.eval()
    assert not torch.allclose(ours(x)[0], changed(x)[1], rtol=1e-3, atol=1e-4)
