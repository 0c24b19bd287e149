"""The ExecuTorch half of benchmarks/bench_export.py; runs in ExecuTorch's venv (executorch 1.5.1, Vela 5.1.0).

Input (from bench_export.py): the float module as a `torch.export.save` file, the calibration samples (edgenas's,
in its order) and the evaluation inputs as .npy (NCHW float32, one sample a call: the exported graph's shapes
are those of one sample). Steps, as ExecuTorch's Ethos-U minimal example does them:
EthosUQuantizer with `get_symmetric_quantization_config()` (per-channel int8 weights, HistogramObserver
activations), prepare_pt2e, calibration, convert_pt2e; torch.export of the quantised module;
to_edge_transform_and_lower with the EthosUPartitioner; to_executorch. Vela's summary of every delegated
partition is read by wrapping the backend's `vela_compile` (the real compiler runs; the wrapper only gives each
partition its own output folder, which the compile spec's one intermediate folder would share).

Output (--out DIR): result.json (partitions, the ops left outside them with output shapes and MACs, each
partition's Vela figures, versions) and outputs.npy (the converted pt2e model's last output on the
evaluation inputs: the int8 numbers ExecuTorch would start from, run in torch; nothing runs on an FVP here).
Hand-written because no ExecuTorch tool reports partitions, CPU ops and Vela figures together.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

SKIP_TARGETS = ("getitem",)  # bookkeeping nodes, not ops that run


def vela_summary(output_dir: str) -> dict:
    """The first row of Vela's summary CSV in `output_dir`, numbers as floats."""
    (path,) = glob.glob(os.path.join(output_dir, "*_summary_*.csv"))
    with open(path, newline="") as f:
        row = next(csv.DictReader(f))
    out = {}
    for k, v in row.items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            out[k] = v
    return out


def instrument_vela(work: Path, summaries: list) -> None:
    """Give every partition's Vela run its own folder and keep its summary."""
    from executorch.backends.arm.ethosu import backend

    real = backend.vela_compile

    def wrapped(tosa_flatbuffer, args, verbose=False, intermediate_path=None, block_placements=None):
        d = work / f"partition{len(summaries)}"
        d.mkdir(parents=True, exist_ok=True)
        flags = list(args)
        result = real(tosa_flatbuffer, args, verbose=verbose, intermediate_path=str(d),
                      block_placements=block_placements)
        summaries.append({"flags": flags, "tosa_bytes": len(tosa_flatbuffer), **vela_summary(str(d / "output"))})
        return result

    backend.vela_compile = wrapped


def node_macs(node, out_shape) -> int:
    """MACs of a convolution or linear left on the CPU (0 for everything else)."""
    name = str(node.target)
    w = node.args[1] if len(node.args) > 1 else None
    if not isinstance(w, torch.fx.Node) or not hasattr(w.meta.get("val"), "shape"):
        return 0
    shape = w.meta["val"].shape
    if "convolution" in name:  # weight (out, in/groups, kh, kw)
        return math.prod(out_shape) * math.prod(shape[1:])
    if "linear" in name:  # weight (out, in)
        return math.prod(out_shape) * int(shape[-1])
    return 0


def graph_ops(program) -> tuple[list[dict], list[dict]]:
    """(delegate calls, ops outside any delegate) of a lowered edge program. `at_io` marks a quantize of a
    user input or a dequantize that feeds the program's output (the boundary a TFLite int8 file leaves to
    the application)."""
    user_inputs = set(program.graph_signature.user_inputs)
    delegates, cpu = [], []
    for node in program.graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        name = getattr(node.target, "__name__", str(node.target))
        if name in SKIP_TARGETS:
            continue
        if "executorch_call_delegate" in name:
            delegates.append({"name": node.name, "lowered_module": str(node.args[0])})
            continue
        val = node.meta.get("val")
        shape = list(val.shape) if hasattr(val, "shape") else []
        src = node.args[0] if node.args else None
        at_io = ("quantize_per" in name and not name.startswith("de") and isinstance(src, torch.fx.Node)
                 and src.op == "placeholder" and src.name in user_inputs) or \
                ("dequantize_per" in name and any(u.op == "output" for u in node.users))
        cpu.append({"op": name, "name": node.name, "out_shape": shape, "at_io": bool(at_io),
                    "dtype": str(getattr(val, "dtype", "")), "macs": node_macs(node, shape)})
    return delegates, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--program", required=True, help="torch.export.save file of the float module")
    ap.add_argument("--calib", required=True, help=".npy of calibration inputs (N, C, H, W)")
    ap.add_argument("--eval", required=True, help=".npy of evaluation inputs (N, C, H, W)")
    ap.add_argument("--target", default="ethos-u55-256")
    ap.add_argument("--system-config", required=True)
    ap.add_argument("--memory-mode", required=True)
    ap.add_argument("--vela-flag", action="append", default=[], help="extra Vela flag (repeatable)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)

    from ethosu.vela import __version__ as vela_version
    from executorch.backends.arm.ethosu import EthosUCompileSpec, EthosUPartitioner
    from executorch.backends.arm.quantizer import EthosUQuantizer, get_symmetric_quantization_config
    from executorch.exir import EdgeCompileConfig, ExecutorchBackendConfig, to_edge_transform_and_lower
    from executorch.version import __version__ as et_version
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    times = {}
    calib = torch.from_numpy(np.load(a.calib))
    evals = torch.from_numpy(np.load(a.eval))
    example = (calib[:1],)
    graph_module = torch.export.load(a.program).module()

    spec = EthosUCompileSpec(target=a.target, system_config=a.system_config, memory_mode=a.memory_mode,
                             extra_flags=list(a.vela_flag))
    quantizer = EthosUQuantizer(spec)
    quantizer.set_global(get_symmetric_quantization_config())
    t = time.time()
    prepared = prepare_pt2e(torch.export.export(graph_module, example).module(), quantizer)
    with torch.no_grad():
        for i in range(len(calib)):  # one sample a call: the exported graph's shapes are those of one sample
            prepared(calib[i:i + 1])
    converted = convert_pt2e(prepared)
    times["quantise_s"] = time.time() - t

    t = time.time()
    outs = []
    with torch.no_grad():
        for i in range(len(evals)):
            y = converted(evals[i:i + 1])
            outs.append((y[-1] if isinstance(y, (tuple, list)) else y).numpy())
    np.save(out / "outputs.npy", np.concatenate(outs))
    times["evaluate_s"] = time.time() - t

    summaries: list = []
    instrument_vela(out / "vela", summaries)
    t = time.time()
    result: dict = {"versions": {"executorch": et_version, "torch": torch.__version__,
                                 "vela": vela_version}, "compile_flags": spec.compiler_flags,
                    "quantization": "EthosUQuantizer, get_symmetric_quantization_config() (per-channel int8 "
                                    "weights [-127, 127], int8 activations from HistogramObserver)"}
    try:
        qep = torch.export.export(converted, example)
        edge = to_edge_transform_and_lower(qep, partitioner=[EthosUPartitioner(spec)],
                                           compile_config=EdgeCompileConfig(_check_ir_validity=False))
        delegates, cpu = graph_ops(edge.exported_program())
        times["lower_s"] = time.time() - t
        pte = edge.to_executorch(config=ExecutorchBackendConfig(extract_delegate_segments=False))
        result["pte_bytes"] = len(pte.buffer)
        result.update(status="ok", delegates=delegates, cpu_ops=cpu, partitions=summaries)
    except Exception as e:  # a lowering failure is a finding: record it exactly
        result.update(status="failed", error=f"{type(e).__name__}: {e}"[:4000], partitions=summaries)
    result["times"] = times
    with open(out / "result.json.tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(out / "result.json.tmp", out / "result.json")


if __name__ == "__main__":
    main()
