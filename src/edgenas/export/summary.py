"""What a firmware engineer must know to feed the exported model and read its answer, as data.

The built-in tasks' preprocessing is written down here from their documented behaviour
(train/tasks/classification.py, train/tasks/flow.py): both scale 8-bit pixels from [0, 255] to [-1, 1]
and lay images out channels-last in the TFLite file. A plug-in task's is unknown here and is said so.
"""

from __future__ import annotations

from typing import Any

from edgenas.train.tasks.base import Task


def _quant_formula(scale: float, zero_point: int) -> str:
    zp = f"+ {zero_point}" if zero_point >= 0 else f"- {-zero_point}"
    return (f"x = p / 127.5 - 1 for each 8-bit pixel value p in [0, 255]; int8 input q = clamp(round(x / {scale!r}) "
            f"{zp}, -128, 127)")


def preprocessing(task: Task, resolution: tuple[int, int], input_quant: tuple[float, int]) -> dict[str, Any]:
    h, w = resolution
    scale, zp = input_quant
    if task.kind == "classification":
        channels = int(getattr(task, "input_channels", 1))
        order = "grey (1 channel)" if channels == 1 else "RGB"
        return {
            "layout": f"NHWC [1, {h}, {w}, {channels}]",
            "channel_order": order,
            "resize": f"the image resized to {h}x{w} (bilinear, antialiased when shrinking; aspect ratio not kept)",
            "normalisation": _quant_formula(scale, zp),
        }
    if task.kind == "flow":
        return {
            "layout": f"NHWC [1, {h}, {w}, 6]",
            "channel_order": "frame 1 R, G, B, then frame 2 R, G, B",
            "resize": (f"the centre {h}x{w} window of both frames at native scale" if getattr(task, "fit", "") == "crop"
                       else f"both frames resized to {h}x{w} (antialiased when shrinking)"),
            "normalisation": _quant_formula(scale, zp),
        }
    return {"layout": "NHWC", "note": f"task kind {task.kind!r}: see the task's own documentation",
            "input_scale": scale, "input_zero_point": zp}


def output_units(task: Task, resolution: tuple[int, int]) -> str:
    h, w = resolution
    if task.kind == "classification":
        n = getattr(task, "num_classes", "?")
        return (f"the last output: logits of {n} classes (dequantise with its scale and zero point; argmax = the "
                "class; no softmax applied)")
    if task.kind == "flow":
        return (f"the last output: optical flow (u, v) in pixels at the export resolution {h}x{w}, NHWC [1, {h}, "
                f"{w}, 2], u to the right, v down; earlier outputs are the coarser heads, in pixels of their own grid")
    return f"task kind {task.kind!r}: see the task's own documentation"


def tensor_entry(detail: Any) -> dict[str, Any]:
    """One LiteRT input/output detail as JSON: name, shape, dtype, scale, zero point."""
    scale, zp = detail["quantization"]
    return {"name": detail["name"], "shape": [int(d) for d in detail["shape"]], "dtype": detail["dtype"].__name__,
            "scale": float(scale), "zero_point": int(zp)}
