"""The task's metrics of an int8 TFLite file, run in LiteRT with TFLite's reference kernels.

Reference kernels (`OpResolverType.BUILTIN_REF`) because they are the integer arithmetic the file means,
the same that TFLite Micro's reference kernels compute, rather than an optimised kernel's rounding; the
builtin kernels only where the reference resolver lacks an op of the file (the resolver used is reported).
Inputs are quantised with the file's own (scale, zero point); outputs are dequantised and handed to the
task's `metric_sums` in the module's layout (NCHW, or [N, classes]), matched to the graph's outputs by
tensor name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from edgenas.train.tasks.base import Task

Progress = Callable[[int, int], None]


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return np.clip(np.round(x / scale) + zero_point, -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (q.astype(np.float32) - zero_point) * np.float32(scale)


def interpreter(model: bytes) -> tuple[Any, str]:
    """(LiteRT interpreter, the op resolver's name): the reference kernels, or where they lack an op of the
    file (LiteRT 2.3's reference resolver has no DEPTH_TO_SPACE version 2) the builtin kernels without
    delegates."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        return Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF), \
            "BUILTIN_REF"
    except ValueError as e:
        if "Didn't find op" not in str(e):
            raise
    kind = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return Interpreter(model_content=model, experimental_op_resolver_type=kind), kind.name


def int8_metrics(model: bytes, output_names: list[str], task: Task, ds: Dataset, *,
                 progress: Progress | None = None) -> tuple[dict[str, float], str]:
    """Every metric of `task` over `ds` (sum / count over all samples, as the trainer's `evaluate`), and the
    op resolver used."""
    it, resolver = interpreter(model)
    it.allocate_tensors()
    (inp,) = it.get_input_details()
    by_name = {d["name"]: d for d in it.get_output_details()}
    outs = [by_name[n] for n in output_names]
    sums: dict[str, list[float]] = {}
    n = len(ds)
    for i in range(n):
        x, target = ds[i]
        nhwc = x.permute(1, 2, 0).numpy()[None] if x.dim() == 3 else x.numpy()[None]
        it.set_tensor(inp["index"], quantize(nhwc, *inp["quantization"]))
        it.invoke()
        outputs = []
        for d in outs:
            y = torch.from_numpy(dequantize(it.get_tensor(d["index"]), *d["quantization"]))
            outputs.append(y.permute(0, 3, 1, 2) if y.dim() == 4 else y)
        for name, (s, c) in task.metric_sums(tuple(outputs), target[None]).items():
            acc = sums.setdefault(name, [0.0, 0])
            acc[0] += float(s)
            acc[1] += int(c)
        if progress is not None:
            progress(i + 1, n)
    return {k: (s / c if c else float("nan")) for k, (s, c) in sums.items()}, resolver
