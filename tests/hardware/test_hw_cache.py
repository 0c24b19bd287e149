"""MeasurementCache on a real SQLite file: keys, concurrency, and crash safety."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from edgenas.hardware import (
    LayerRow,
    Measurement,
    MeasurementCache,
    VelaEvaluator,
    cache_key,
    load_profile,
)

BATCH = 40


def _fake(i: int, n_layers: int = 30) -> Measurement:
    row = LayerRow("Conv2D", "Conv2D", "NPU", f"conv{i}", i, i, 1, 0, 0, 2, 3, 4.5, 6)
    return Measurement("ok", metrics={"fps": i + 0.5, "cycles_total": i}, layers=(row,) * n_layers,
                       provenance={"i": i})  # fmt: skip


def test_put_get_real_measurement(tmp_path: Path, small_model: bytes) -> None:
    p = load_profile()
    m = VelaEvaluator(p).evaluate_bytes(small_model)
    key = cache_key(small_model, p)
    with MeasurementCache(tmp_path / "c.sqlite") as cache:
        assert cache.get(key) is None and key not in cache
        assert cache.put(key, m)
        assert cache.get(key) == m and key in cache and len(cache) == 1
    with MeasurementCache(tmp_path / "c.sqlite") as again:  # persisted
        assert again.get(key) == m
        assert again.get_many([key, "missing", key]) == {key: m}


def test_only_deterministic_results_are_cached(tmp_path: Path) -> None:
    cache = MeasurementCache(tmp_path / "c.sqlite")
    assert cache.put("a", Measurement.failed("Compilation failed: unsupported"))
    assert not cache.put("b", Measurement.failed("compile took over 300 s", retryable=True))
    assert "a" in cache and "b" not in cache
    cache.put("a", _fake(1))  # replaces
    assert cache.get("a") == _fake(1) and len(cache) == 1


def test_get_many_in_chunks(tmp_path: Path) -> None:
    cache = MeasurementCache(tmp_path / "c.sqlite")
    assert cache.put_many((f"k{i}", _fake(i, 1)) for i in range(1200)) == 1200
    got = cache.get_many([f"k{i}" for i in range(0, 1300, 3)])
    assert len(got) == 400 and got["k999"] == _fake(999, 1)


def _writer(path: str, start: int, n: int) -> None:
    cache = MeasurementCache(path)
    for i in range(start, start + n):
        cache.put(f"k{i}", _fake(i))
    cache.put("shared", _fake(start))
    cache.close()


def test_concurrent_writers_from_two_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "c.sqlite")
    MeasurementCache(path).close()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, s, 300)) for s in (0, 300)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    cache = MeasurementCache(path)
    got = cache.get_many([f"k{i}" for i in range(600)])
    assert len(got) == 600 and all(got[f"k{i}"] == _fake(i) for i in range(600))
    assert cache.get("shared") in (_fake(0), _fake(300))


def _endless_writer(path: str) -> None:
    cache = MeasurementCache(path)
    i = 0
    while True:
        cache.put_many((f"k{i + j}", _fake(i + j, 200)) for j in range(BATCH))
        i += BATCH


def test_sigkill_mid_sweep_leaves_only_whole_transactions(tmp_path: Path) -> None:
    path = str(tmp_path / "c.sqlite")
    MeasurementCache(path).close()
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=_endless_writer, args=(path,))
    proc.start()
    reader = sqlite3.connect(path, timeout=30)
    deadline = time.monotonic() + 60
    while reader.execute("SELECT COUNT(*) FROM measurements").fetchone()[0] < 5 * BATCH:
        assert time.monotonic() < deadline, "writer made no progress"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert proc.exitcode == -signal.SIGKILL
    reader.close()
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    cache = MeasurementCache(path)
    n = len(cache)
    assert n >= 5 * BATCH and n % BATCH == 0  # every put_many landed whole or not at all
    got = cache.get_many([f"k{i}" for i in range(n)])
    assert len(got) == n and all(got[f"k{i}"] == _fake(i, 200) for i in range(0, n, 7))
    cache.put("after", _fake(1))  # still writable
    assert cache.get("after") == _fake(1)


def test_key_changes_with_any_byte_or_profile_option(small_model: bytes) -> None:
    p = load_profile()
    key = cache_key(small_model, p)
    assert key == cache_key(bytes(small_model), load_profile())  # stable
    flipped = bytearray(small_model)
    flipped[len(flipped) // 2] ^= 1
    assert cache_key(bytes(flipped), p) != key
    assert cache_key(small_model, p, per_layer=False) != key
    assert cache_key(small_model, p, evaluator="analytic") != key
    changes = {
        "name": "other", "description": "x", "accelerator_config": "ethos-u55-128",
        "system_config": "Ethos_U55_Deep_Embedded", "memory_mode": "Sram_Only", "sram_kib": 4096,
        "flash_kib": 1, "dram_kib": 1, "arena_cache_kib": 1024, "core_clock_hz": 1.0, "macs_per_cycle": 1.0,
        "sram_bytes_per_cycle": 1.0, "flash_bytes_per_cycle": 0.5, "dram_bytes_per_cycle": 1.0,
        "host_cpu_macs_per_s": 1.0, "evaluator": "analytic", "calibration": "/tmp/cal.json",
    }  # fmt: skip
    fields = {f.name for f in dataclasses.fields(p)} - {"vela_config"}
    assert set(changes) == fields, "a new profile field needs a key test"
    keys = {cache_key(small_model, dataclasses.replace(p, **{f: v})) for f, v in changes.items()}
    assert len(keys) == len(changes) and key not in keys


def test_key_covers_custom_vela_ini_contents(tmp_path: Path, small_model: bytes) -> None:
    from ethosu.vela.architecture_features import CONFIG_FILES_PATH

    text = Path(CONFIG_FILES_PATH, "Arm", "vela.ini").read_text()
    ini = tmp_path / "v.ini"
    ini.write_text(text)
    p = load_profile("ethos-u55-256", {"vela_config": str(ini)})
    before = cache_key(small_model, p)
    ini.write_text(text.replace("Sram_read_latency=32", "Sram_read_latency=33", 1))
    assert cache_key(small_model, p) != before


@pytest.mark.parametrize("garbage", [b"not zlib", b"x\x9c\x03\x00\x00\x00\x00\x01"])
def test_undecodable_rows_are_misses(tmp_path: Path, garbage: bytes) -> None:
    cache = MeasurementCache(tmp_path / "c.sqlite")
    db = sqlite3.connect(tmp_path / "c.sqlite")
    db.execute("INSERT INTO measurements VALUES ('bad', 'ok', ?, 0)", (garbage,))
    db.commit()
    assert cache.get("bad") is None and cache.get_many(["bad"]) == {}
