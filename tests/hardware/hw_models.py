"""Test models for the hardware tests, written by edgenas's own TFLite writer from IR graphs.

A uniquely named module (not conftest) so test files can import it unambiguously.
"""

from __future__ import annotations

import os
import shutil
import sys

from edgenas.graph.ir import Graph
from edgenas.graph.networks import get_template

VELA_EXE = shutil.which("vela") or os.path.join(os.path.dirname(sys.executable), "vela")


def residual_net(h: int, w: int, *, cpu_op: bool) -> Graph:
    """conv/2 -> dw -> 1x1 -> add -> conv/2 -> 1x1 [-> DEPTH_TO_SPACE, a CPU op on Ethos-U55]."""
    g = Graph("residual")
    x = g.add_input("input", (1, h, w, 8))
    a = g.add("conv2d", "c0", [x], kernel=3, stride=2, out_channels=32, act="relu")
    b = g.add("depthwise_conv2d", "dw1", [a], kernel=3, stride=1, act="relu")
    c = g.add("conv2d", "pw2", [b], kernel=1, stride=1, out_channels=32, act="relu")
    d = g.add("add", "add3", [a, c])
    e = g.add("conv2d", "c4", [d], kernel=3, stride=2, out_channels=64, act="relu")
    y = g.add("conv2d", "pw5", [e], kernel=1, stride=1, out_channels=16, act="none")
    if cpu_op:
        y = g.add("depth_to_space", "d2s6", [y], block=2, lowering="op")  # the TFLite op: CPU fallback
    g.mark_output(y)
    return g


def flow_net() -> Graph:
    """The seed study's flow network (template defaults, 48-channel Head1) at 6x192x256: 1.07 GMAC."""
    t = get_template("flow")
    params = {k: v.default for k, v in t.params.items()}
    return t.build(params, {**t.widths, "head1": 48}, 6, (192, 256))


# A U55 system whose AXI1 is DRAM, so Dedicated_Sram (spilling to DRAM) works on U55.
DRAM_INI = """
[System_Config.U55_With_Dram]
core_clock=400e6
axi0_port=Sram
axi1_port=Dram
Sram_clock_scale=1.0
Sram_burst_length=32
Sram_read_latency=32
Sram_write_latency=32
Sram_max_reads=4
Sram_max_writes=4
Dram_clock_scale=0.5
Dram_burst_length=128
Dram_read_latency=250
Dram_write_latency=250
Dram_max_reads=8
Dram_max_writes=4

[Memory_Mode.Dedicated_Sram]
const_mem_area=Axi1
arena_mem_area=Axi1
cache_mem_area=Axi0
"""
