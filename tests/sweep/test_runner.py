"""Sweep runner logic: a candidate the compiler rejects becomes a failed row and the sweep goes on."""

from __future__ import annotations

import pytest

from edgenas.hardware.profile import load_profile
from edgenas.space.space import load_space
from edgenas.sweep import runner
from edgenas.sweep.runner import plan_jobs, run_sweep


def test_rejected_candidate_is_a_failed_row_and_the_rest_are_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    space = load_space("flow_head_upsample")
    jobs = plan_jobs(space, resolutions=[(64, 96)])[:4]
    victim = jobs[1].genotype.arch_id
    real = runner.graph_to_tflite

    def writer(graph, *, seed):  # a model the compiler cannot take: cut off halfway
        data = real(graph, seed=seed)
        return data[: len(data) // 2] if graph.meta["arch_id"] == victim else data

    monkeypatch.setattr(runner, "graph_to_tflite", writer)
    results = run_sweep(space, [load_profile("ethos-u55-256")], jobs, n_jobs=1, cache_path=None)
    rows = [r.rows[0] for r in results]
    assert [r["status"] for r in rows] == ["ok", "failed", "ok", "ok"]
    assert rows[1]["error"] and rows[1]["fps"] == "" and rows[1]["over_sram"] == ""
    assert all(float(r["fps"]) > 0 for i, r in enumerate(rows) if i != 1)
