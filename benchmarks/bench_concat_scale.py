"""Concat scaling and observers for post-training int8 on the seed's flow network (issue 10 item 1).

Two concat modes (`edgenas.export.ptq.to_int8_tflite(concat=...)`): "shared" (one scale through every
concat; with the ShuffleNet split/concat channel shuffle one class spans the whole backbone) and
"per_input" (each concat input keeps its calibrated params; the file requantises with int8->int8 QUANTIZE
where they differ). Measured with the compiler (Vela, ethos-u55-256: cycles, FPS, SRAM, NPU/CPU ops) at
48x64 and 192x256, and for accuracy: EPE of the int8 file (LiteRT, reference kernels) against the float
module on the task's validation set at the training resolution, for the three torchao observers.

Usage: python benchmarks/bench_concat_scale.py [--checkpoint runs/flow_accuracy/train/fea8f14ba513-s0/best.pt]
       [--val-samples 200] [--calib-samples 64]
Reads the checkpoint only. Calibration: the first --calib-samples training pairs at 48x64; at 192x256 (cycles
only, no accuracy) the first 16 validation pairs at 192x256, as no training set at that size is cached.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import time
from pathlib import Path

import numpy as np
import torch
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from machine import describe

from edgenas.export.ptq import OBSERVERS, to_int8_tflite
from edgenas.hardware.profile import load_profile
from edgenas.hardware.vela import VelaEvaluator
from edgenas.tflite.quant import requantized_concat_inputs
from edgenas.train.builder import GraphModule
from edgenas.train.run import make_candidate
from edgenas.train.trainer import check_identity, evaluate, load_checkpoint, load_weights

CONFIG = "examples/flow_accuracy.yaml"
CHECKPOINT = "runs/flow_accuracy/train/fea8f14ba513-s0/best.pt"
MODES = ("shared", "per_input")


def stack(ds, idx: range) -> tuple[torch.Tensor, torch.Tensor]:
    items = [ds[i] for i in idx]
    x = torch.stack([it[0][0] if isinstance(it[0], (tuple, list)) else it[0] for it in items])
    return x, torch.stack([it[1] for it in items])


def int8_metrics(model: bytes, task, ds, n: int) -> dict[str, float]:
    """The task's metrics of the int8 file (LiteRT reference kernels), last output dequantised."""
    it = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    (inp,) = it.get_input_details()
    out = it.get_output_details()[-1]
    (s_in, z_in), (s_out, z_out) = inp["quantization"], out["quantization"]
    sums: dict[str, list[float]] = {}
    for i in range(n):
        x, target = stack(ds, range(i, i + 1))
        q = np.clip(np.round(x.permute(0, 2, 3, 1).numpy() / s_in) + z_in, -128, 127).astype(np.int8)
        it.set_tensor(inp["index"], q)
        it.invoke()
        pred = (it.get_tensor(out["index"]).astype(np.float32) - z_out) * s_out
        for k, (s, c) in task.metric_sums((torch.from_numpy(pred).permute(0, 3, 1, 2),), target).items():
            acc = sums.setdefault(k, [0.0, 0])
            acc[0] += s
            acc[1] += c
    return {k: s / c for k, (s, c) in sums.items()}


def classes(act_quant: dict) -> tuple[int, int]:
    """(distinct activation params, tensors in the largest group sharing one)."""
    groups = collections.Counter(act_quant.values())
    return len(groups), max(groups.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--checkpoint", default=CHECKPOINT)
    ap.add_argument("--val-samples", type=int, default=200)
    ap.add_argument("--calib-samples", type=int, default=64)
    a = ap.parse_args()
    torch.set_num_threads(1)
    state = load_checkpoint(Path(a.checkpoint))
    c = make_candidate(CONFIG, state["identity"]["genotype"])
    check_identity(state, c.identity, Path(a.checkpoint))
    evaluator = VelaEvaluator(load_profile("ethos-u55-256"))

    def module_at(res: tuple[int, int]) -> GraphModule:
        m = GraphModule(c.graph(res))
        load_weights(m, state, Path(a.checkpoint))
        return m.eval()

    train_res = c.resolution
    train = c.task.data(train_res, seed=0).train
    val = c.task.eval_data(train_res)
    n_val = min(a.val_samples, len(val))
    calib_x, _ = stack(train, range(a.calib_samples))
    calib = list(calib_x.split(16))

    print(f"### Concat scaling and observers for int8 PTQ ({datetime.date.today()})\n")
    print(f"Command: `python benchmarks/bench_concat_scale.py --val-samples {a.val_samples} --calib-samples "
          f"{a.calib_samples}`; machine: {describe()}; network {c.genotype} (checkpoint {a.checkpoint}, trained "
          f"at {train_res[0]}x{train_res[1]}); compiler: Vela on ethos-u55-256 (High_End_Embedded, Shared_Sram, "
          f"2 MiB arena target).\n")
    print("| resolution | concat | QUANTIZE ops | distinct act params | largest shared group (tensors) | "
          "NPU / CPU ops | cycles | FPS | SRAM KiB | flash KiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for res in (train_res, (192, 256)):
        module = module_at(res)
        if res == train_res:
            batches = calib
        else:
            x, _ = stack(c.task.eval_data(res), range(16))
            batches = list(x.split(4))
        for mode in MODES:
            model, aq = to_int8_tflite(module, batches, concat=mode)
            n_q = sum(len(v) for v in requantized_concat_inputs(module.graph, aq).values())
            m = evaluator.evaluate_bytes(model, per_layer=False)
            k = m.metrics
            distinct, largest = classes(aq)
            print(f"| {res[0]}x{res[1]} | {mode} | {n_q} | {distinct} | {largest} | {k['npu_ops']} / {k['cpu_ops']} "
                  f"| {k['cycles_total']:,} | {k['fps']:.2f} | {k['sram_kib']:.0f} | {k['offchip_flash_kib']:.0f} |")

    module = module_at(train_res)
    t0 = time.perf_counter()
    fl = evaluate(module, c.task, torch.utils.data.Subset(val, range(n_val)), batch_size=16)
    print(f"\nAccuracy at {train_res[0]}x{train_res[1]} on the first {n_val} validation pairs: float module EPE "
          f"{fl['epe']:.4f} px (fl_all {fl['fl_all']:.2f}%). int8 files in LiteRT (BUILTIN_REF), calibrated on "
          f"{a.calib_samples} training pairs:\n")
    print("| observer | concat | int8 EPE | EPE - float EPE | fl_all % | QUANTIZE ops | s |")
    print("|---|---|---|---|---|---|---|")
    for observer in OBSERVERS:
        for mode in MODES:
            t = time.perf_counter()
            model, aq = to_int8_tflite(module, calib, observer=observer, concat=mode)
            n_q = sum(len(v) for v in requantized_concat_inputs(module.graph, aq).values())
            q = int8_metrics(model, c.task, val, n_val)
            print(f"| {observer} | {mode} | {q['epe']:.4f} | {q['epe'] - fl['epe']:+.4f} | {q['fl_all']:.2f} | {n_q} "
                  f"| {time.perf_counter() - t:.0f} |", flush=True)
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
