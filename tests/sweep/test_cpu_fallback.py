"""A CPU-fallback op is never hidden: fps_complete=false, and fps_end_to_end adds the host's share."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

from edgenas.space.space import load_space

SPACE = """
name: d2s_probe
network: flow
resolutions: [64x96]
fixed: {upsample: depth_to_space_op}
choices:
  backbone: [shufflenet]
  head1_block: [conv3x3, dsconv3x3]
tied: {head2_block: head1_block}
"""


def test_depth_to_space_falls_back_and_end_to_end_fps_adds_the_cpu_part(tmp_path: Path) -> None:
    space_file = tmp_path / "d2s.yaml"
    space_file.write_text(SPACE)
    out, layers = tmp_path / "r.csv", tmp_path / "l.csv"
    subprocess.run([str(Path(sys.executable).with_name("edgenas")), "sweep", str(space_file), "--no-cache",
                    "--out", str(out), "--layers", str(layers)], check=True, capture_output=True)
    rows = list(csv.DictReader(out.open()))
    cpu_rows = [r for r in csv.DictReader(layers.open()) if r["target"] == "CPU"]
    space = load_space(space_file)
    host_rate = 1.0e9  # host_cpu_macs_per_s of the ethos-u55-256 profile
    for r in rows:
        assert r["fps_complete"] == "false" and int(r["cpu_ops"]) == 2
        names = sorted(c["name"] for c in cpu_rows if c["arch_id"] == r["arch_id"])
        assert names == ["head1.up.d2s", "head2.up.d2s"]
        graph = space.build(space.genotype({"head1_block": r["head1_block"]}), (64, 96))
        # Data movement: one host operation per output element of each CPU op.
        work = sum(math.prod(graph.shape(n)) for n in names)
        expect = 1.0 / (1.0 / float(r["fps"]) + work / host_rate)
        assert math.isclose(float(r["fps_end_to_end"]), expect, rel_tol=1e-5)
        assert float(r["fps_end_to_end"]) < float(r["fps"])
