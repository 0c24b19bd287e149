"""Shared helpers for the TFLite writer tests: run a model in the TFLite interpreter, compile it with
Vela's C++ core in-process (configured exactly like `vela` does for an Ethos-U55-256)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from edgenas.graph.ir import Graph

U55_SYSTEM = (
    "[architecture]\nmacs=256\ncores=1\n"
    "[vela]\nsystem_config_name=Ethos_U55_High_End_Embedded\nmemory_mode_name=Shared_Sram\n"
)
OPTIONS = "\n[compiler]\noutput_format=TFLite\n\n[scheduler]\noptimize=Performance\narena_size_limit=2097152\n"


@pytest.fixture(scope="session")
def vela_compile() -> Callable[[bytes], Any]:
    """model bytes -> regor perf_report (raises on a rejected model)."""
    import ethosu.vela
    from ethosu import regor

    ini_path = os.path.join(os.path.dirname(ethosu.vela.__file__), "..", "config_files", "Arm", "vela.ini")
    with open(ini_path, encoding="utf-8") as f:
        system = U55_SYSTEM + f.read()

    def compile_(data: bytes) -> Any:
        return regor.compile("EthosU55", data, "TFLITE", system, options=OPTIONS).perf_report

    return compile_


@pytest.fixture(scope="session")
def run_tflite() -> Callable[..., tuple[Any, list[np.ndarray]]]:
    """(model bytes, graph) -> (interpreter after invoke on a random int8 input, outputs in graph order)."""
    from ai_edge_litert.interpreter import Interpreter

    def run(data: bytes, graph: Graph, seed: int = 0) -> tuple[Any, list[np.ndarray]]:
        it = Interpreter(model_content=data)
        it.allocate_tensors()
        rng = np.random.default_rng(seed)
        for d in it.get_input_details():
            it.set_tensor(d["index"], rng.integers(-128, 128, d["shape"], dtype=np.int8))
        it.invoke()
        by_name = {d["name"]: d for d in it.get_output_details()}
        return it, [it.get_tensor(by_name[t]["index"]) for t in graph.outputs]

    return run
