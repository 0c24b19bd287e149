"""What the firmware needs to run a model under TensorFlow Lite Micro: the tensor arena and the op list.

How each figure is obtained (summary.json names the method next to the number):
- Plain int8 file: measured with PyPI `tflite-micro` (TFLM's own C++ runtime, reference kernels). Its
  RecordingMicroAllocator reports head (non-persistent tensors, planned by TFLM's greedy planner) and tail
  (persistent bookkeeping: eval tensors, node structs, kernels' op data). The arena a program must
  declare is a little more (the allocator objects live in the arena too), so the smallest arena with which
  the runtime allocates the model is found by bisection (over multiples of 16 bytes). Each try runs in a
  forked child: the runtime has crashed (segfault) after a failed allocation in the same process.
- Vela file: it cannot run off the NPU (TFLM needs the Ethos-U driver for its one custom op), so it is
  computed: Vela plans the feature maps itself and writes their offsets into the file's
  `OfflineMemoryAllocation` metadata, which TFLM honours; the planned extent is the largest offset + size.
  TFLM's bookkeeping for the Vela file (one operator, a handful of tensors) is bounded by the measured
  bookkeeping of the plain int8 file of the same network (every operator and tensor of it): the arena
  reported is extent + that bound, rounded up to 16 bytes. An upper estimate, not a measurement.

Why hand-written: neither runtime exposes the arena size as a number, only as printed text.
"""

from __future__ import annotations

import multiprocessing
import re
from typing import Any

import numpy as np

from edgenas.hardware._capture import captured_fds

ETHOS_U_OP = "CUSTOM:ethos-u"
_REPORT = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")


def _align(n: int, a: int = 16) -> int:
    return (n + a - 1) // a * a


def resolver_call(op: str) -> str:
    """TFLM `MicroMutableOpResolver` method that registers a TFLite op: CONV_2D -> AddConv2D, MAX_POOL_2D ->
    AddMaxPool2D, CUSTOM:ethos-u -> AddEthosU."""
    if op == ETHOS_U_OP:
        return "AddEthosU"
    return "Add" + "".join(p if p[:1].isdigit() else p.capitalize() for p in op.split("_"))


def _probe(model: bytes, arena: int, report: bool, conn: Any) -> None:
    from tflite_micro import runtime

    try:
        with captured_fds() as box:
            it = runtime.Interpreter.from_bytes(model, arena_size=arena)
            if report:
                it.print_allocations()
        conn.send(box[0] if report else "")
    except RuntimeError as e:
        conn.send(None if not report else f"error: {e}")


def _try(model: bytes, arena: int, report: bool = False) -> str | None:
    """Text printed by the runtime (or '') when `arena` bytes suffice, None when not (or it crashed)."""
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_probe, args=(model, arena, report, send), daemon=True)
    proc.start()
    send.close()
    try:
        text = recv.recv() if recv.poll(120) else None
    except EOFError:
        text = None
    finally:
        recv.close()
    proc.join(5)
    if proc.is_alive():
        proc.kill()
        proc.join()
    return text


def activation_bytes(model: bytes) -> int:
    """Sum of every non-constant tensor of the file: a generous arena to start the search from."""
    from ethosu.vela.tflite import Model

    m = Model.Model.GetRootAs(model, 0)
    sg = m.Subgraphs(0)
    total = 0
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        if m.Buffers(t.Buffer()).DataLength() == 0:
            total += _align(int(np.prod(t.ShapeAsNumpy())) * 4 if t.ShapeLength() else 16)
    return total


def int8_arena(model: bytes) -> dict[str, Any]:
    """TFLM arena of the plain int8 file, measured (see the module docstring)."""
    hi = activation_bytes(model) + 64 * 1024
    text = _try(model, hi, report=True)
    if text is None or text.startswith("error"):
        raise RuntimeError(f"TFLite Micro could not allocate the model in {hi} bytes: {text}")
    found = {k: int(v) for k, v in _REPORT.findall(text)}
    lo = _align(found.get("total", 1)) // 16  # in units of 16 bytes: arenas are declared 16-byte aligned
    hi = _align(hi) // 16
    for extra in (1024, 4096):  # the allocator's own objects: under 1 KiB seen
        if lo + extra // 16 < hi and _try(model, (lo + extra // 16) * 16) is not None:
            hi = lo + extra // 16
            break
    while lo < hi:  # smallest arena that allocates
        mid = (lo + hi) // 2
        if _try(model, mid * 16) is not None:
            hi = mid
        else:
            lo = mid + 1
    lo *= 16
    return {
        "arena_bytes": lo,
        "recorded_total_bytes": found.get("total"),
        "head_bytes": found.get("head"),
        "tail_bytes": found.get("tail"),
        "method": "measured: smallest arena (a multiple of 16 bytes) with which tflite-micro's Python runtime "
                  "(reference kernels, RecordingMicroAllocator) allocates model_int8.tflite, by bisection; head = "
                  "non-persistent tensors, tail = persistent bookkeeping",
    }


def offline_arena_extent(model: bytes) -> int | None:
    """Largest offset + size over the tensors Vela planned into the arena (OfflineMemoryAllocation), None
    when the file carries no such plan."""
    from ethosu.vela.tflite import Model

    m = Model.Model.GetRootAs(model, 0)
    plan = None
    for i in range(m.MetadataLength()):
        md = m.Metadata(i)
        if md.Name() == b"OfflineMemoryAllocation":
            plan = np.frombuffer(m.Buffers(md.Buffer()).DataAsNumpy().tobytes(), dtype="<i4")
    if plan is None:
        return None
    sg = m.Subgraphs(0)
    offsets = plan[3 : 3 + int(plan[2])]  # [version, subgraphs, tensor count, offset per tensor]
    itemsize = {0: 4, 2: 4, 3: 1, 9: 1, 7: 2, 4: 8, 1: 2, 6: 1}  # TensorType -> bytes
    extent = 0
    for i, off in enumerate(offsets):
        if off < 0:
            continue
        t = sg.Tensors(i)
        n = int(np.prod(t.ShapeAsNumpy())) if t.ShapeLength() else 1
        extent = max(extent, int(off) + n * itemsize.get(t.Type(), 4))
    return extent


def vela_arena(vela_model: bytes, int8: dict[str, Any]) -> dict[str, Any]:
    """TFLM arena estimate for the Vela file (see the module docstring)."""
    extent = offline_arena_extent(vela_model)
    bookkeeping = int8["arena_bytes"] - (int8["head_bytes"] or 0)
    return {
        "arena_bytes": None if extent is None else _align(extent) + _align(bookkeeping),
        "vela_planned_bytes": extent,
        "tflm_bookkeeping_bound_bytes": bookkeeping,
        "method": "estimate: Vela's own plan (largest offset + size in the file's OfflineMemoryAllocation "
                  "metadata: its scratch area holding input, output and intermediate feature maps) plus TFLM's "
                  "bookkeeping bounded by the measured bookkeeping of model_int8.tflite (arena_bytes - head_bytes); "
                  "not run: the Ethos-U op needs the NPU and its driver",
    }


def ops_to_register(op_codes: tuple[str, ...]) -> list[dict[str, str]]:
    """The op list a firmware's MicroMutableOpResolver must hold for a file with these op codes."""
    return [{"op": op, "resolver_call": resolver_call(op)} for op in op_codes]
