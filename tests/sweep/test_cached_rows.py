"""A cached row costs no model build: the memo maps a fingerprint of everything that decides a model's bytes
to their hash, the sweep answers whole-cached jobs in the parent, and anything that changes the bytes or the
compiler's input still misses and is compiled afresh."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgenas.hardware import cache as cache_mod
from edgenas.hardware.cache import MeasurementCache, cache_key, cache_key_for_digest, model_digest
from edgenas.hardware.profile import load_profile, load_profile_spec
from edgenas.hardware.vela import VelaEvaluator
from edgenas.space.space import load_space
from edgenas.sweep import runner
from edgenas.sweep.runner import plan_jobs, run_sweep, weight_seed
from edgenas.tflite import writer
from edgenas.tflite.writer import graph_to_tflite

PROFILE = "ethos-u55-256"


@pytest.fixture(scope="module")
def space():
    return load_space("flow_head_upsample")


@pytest.fixture
def jobs(space):
    return plan_jobs(space, resolutions=[(64, 96)])[:3]


def sweep(space, jobs, cache: Path, profiles=None, n_jobs: int = 1):
    return run_sweep(space, profiles or [load_profile(PROFILE)], jobs, n_jobs=n_jobs, cache_path=cache)


def no_pool(*args, **kwargs):
    raise AssertionError("a fully cached sweep started worker processes")


def test_digest_key_equals_the_key_of_the_bytes(space, jobs) -> None:
    graph = space.build(jobs[0].genotype, jobs[0].resolution)
    data = graph_to_tflite(graph, seed=5)
    profile = load_profile(PROFILE)
    assert cache_key_for_digest(model_digest(data), profile) == cache_key(data, profile)


def test_cached_rerun_builds_no_model_starts_no_pool_and_gives_the_same_rows(space, jobs, tmp_path, monkeypatch):
    db = tmp_path / "m.sqlite"
    first = sweep(space, jobs, db, n_jobs=2)
    assert sum(r.compiled for r in first) == len(jobs)
    monkeypatch.setattr(runner, "_iterate", no_pool)
    monkeypatch.setattr(runner, "graph_to_tflite", no_pool)
    again = sweep(space, jobs, db, n_jobs=2)
    assert [r.rows for r in again] == [r.rows for r in first]
    assert sum(r.compiled for r in again) == 0


def test_memo_digest_is_the_hash_of_the_bytes_the_writer_gives(space, jobs, tmp_path) -> None:
    db = tmp_path / "m.sqlite"
    sweep(space, jobs, db)
    with MeasurementCache(db) as c:
        for job in jobs:
            graph = space.build(job.genotype, job.resolution)
            seed = weight_seed(job.genotype.arch_id)
            digest, figures = c.get_models([runner.row_fingerprint(graph, seed)])[runner.row_fingerprint(graph, seed)]
            assert digest == model_digest(graph_to_tflite(graph, seed=seed))
            assert figures["macs"] == graph.macs


def test_changed_weights_miss_and_are_compiled(space, jobs, tmp_path, monkeypatch) -> None:
    db = tmp_path / "m.sqlite"
    first = sweep(space, jobs, db)
    monkeypatch.setattr(runner, "weight_seed", lambda arch_id: weight_seed(arch_id) + 1)
    again = sweep(space, jobs, db)
    assert sum(r.compiled for r in again) == len(jobs)
    graph = space.build(jobs[0].genotype, jobs[0].resolution)
    fresh = VelaEvaluator(load_profile(PROFILE)).evaluate_bytes(graph_to_tflite(graph, seed=weight_seed(
        jobs[0].genotype.arch_id) + 1))
    assert again[0].rows[0]["encoded_weight_bytes"] == fresh.metrics["encoded_weight_bytes"]
    assert again[0].rows[0]["weights"] != first[0].rows[0]["weights"]


def test_a_changed_writer_misses(space, jobs, tmp_path, monkeypatch) -> None:
    """The memo is written only by a worker that wrote the model: new rows under the new writer's
    fingerprints show every model was written again (the workers may be other processes)."""
    db = tmp_path / "m.sqlite"
    sweep(space, jobs, db)
    monkeypatch.setattr(writer, "writer_version", lambda: "another writer")
    graphs = [(space.build(j.genotype, j.resolution), weight_seed(j.genotype.arch_id)) for j in jobs]
    fingerprints = [runner.row_fingerprint(g, seed) for g, seed in graphs]
    with MeasurementCache(db) as c:
        assert c.get_models(fingerprints) == {}
    again = sweep(space, jobs, db)
    with MeasurementCache(db) as c:
        memo = c.get_models(fingerprints)
    assert set(memo) == set(fingerprints)
    assert [memo[fp][0] for fp in fingerprints] == [model_digest(graph_to_tflite(g, seed=s)) for g, s in graphs]
    assert all(r.rows[0]["status"] == "ok" for r in again)


def test_a_changed_compiler_option_or_version_misses(space, jobs, tmp_path, monkeypatch) -> None:
    db = tmp_path / "m.sqlite"
    sweep(space, jobs, db)
    other = load_profile_spec(f"{PROFILE}:arena_cache_kib=512")
    assert sum(r.compiled for r in sweep(space, jobs, db, [other])) == len(jobs)
    from edgenas.hardware import vela

    monkeypatch.setattr(vela, "compiler_version", lambda: "0.0.0-not-this-one")
    cache_mod._setup_material.cache_clear()
    try:
        assert sum(r.compiled for r in sweep(space, jobs, db)) == len(jobs)
    finally:
        cache_mod._setup_material.cache_clear()


def test_a_changed_graph_misses(space, tmp_path) -> None:
    db = tmp_path / "m.sqlite"
    jobs = plan_jobs(space, resolutions=[(64, 96)])[:1]
    sweep(space, jobs, db)
    wider = load_space_with_width(space, tmp_path)
    assert sum(r.compiled for r in sweep(wider, plan_jobs(wider, resolutions=[(64, 96)])[:1], db)) == 1


def load_space_with_width(space, tmp_path: Path):
    head = next(iter(space.config.widths))
    cfg = tmp_path / "wider.yaml"
    cfg.write_text(f"extends: flow_head_upsample\nname: wider\nwidths: {{{head}: {space.config.widths[head] + 8}}}\n")
    return load_space(str(cfg))
