"""The firmware package of an int8 TFLite file for one Ethos-U target: compile it, refuse what the device
cannot run or hold, size the TFLite Micro arena, and lay out the files and the summary fields a firmware
project reads. `edgenas export` (deploy.py) and the pipeline's export stage both build their folders here,
so the two never disagree on a file name or a summary field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgenas.errors import CompileError, ConfigError
from edgenas.export import tflm
from edgenas.export.c_array import ALIGNMENT, c_array_files
from edgenas.export.summary import output_units, preprocessing, tensor_entry
from edgenas.hardware.profile import HardwareProfile, vela_cli_args

INT8_FILE = "model_int8.tflite"
VELA_FILE = "model_int8_vela.tflite"

# (stage, done, total), as deploy.Progress
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Compiled:
    """An int8 file compiled for a device that can run and hold it."""

    measurement: Any  # hardware.measurement.Measurement
    vela: bytes  # the compiler-optimised file
    ops: list[str]  # op code of every operator of the optimised file, in order

    @property
    def cpu_ops(self) -> list[str]:
        return sorted({op for op in self.ops if op != tflm.ETHOS_U_OP})


def op_names(model: bytes) -> list[str]:
    """The op code of every operator of the file, in order."""
    from ethosu.vela.tflite import Model

    from edgenas.tflite.reader import inspect_tflite

    codes = inspect_tflite(model).op_codes
    sg = Model.Model.GetRootAs(model, 0).Subgraphs(0)
    return [codes[sg.Operators(i).OpcodeIndex()] for i in range(sg.OperatorsLength())]


def check_device(measurement: Any, vela_ops: list[str], profile: HardwareProfile, *, allow_cpu_ops: bool) -> None:
    """ConfigError (field: --allow-cpu-ops, sram_kib, flash_kib or dram_kib) when an op would fall back to
    the CPU without permission or the model does not fit the device's memories."""
    from edgenas.hardware.fit import fit_flags, sram_demand_kib

    p, m = profile, measurement.metrics
    cpu = sorted({op for op in vela_ops if op != tflm.ETHOS_U_OP})
    if int(m["cpu_ops"]) > 0 and not allow_cpu_ops:
        raise ConfigError(f"{int(m['cpu_ops'])} op(s) would run on the CPU of {p.name} ({', '.join(cpu) or '?'}); "
                          "choose a genotype without them or pass --allow-cpu-ops", field="--allow-cpu-ops")
    flags = fit_flags(measurement, p)
    if flags["over_sram"]:
        raise ConfigError(f"the model needs {sram_demand_kib(measurement, p):.1f} KiB of SRAM, {p.name} has "
                          f"sram_kib {p.sram_kib}; export at a smaller --resolution or choose a smaller network",
                          field="sram_kib")
    if flags["over_flash"]:
        raise ConfigError(f"the model needs {float(m['offchip_flash_kib']):.1f} KiB of flash, {p.name} has "
                          f"flash_kib {p.flash_kib}", field="flash_kib")
    if flags["over_dram"]:
        raise ConfigError(f"the model needs {float(m['dram_kib']):.1f} KiB of DRAM, {p.name} has dram_kib "
                          f"{p.dram_kib}", field="dram_kib")


def compile_for_device(tflite: bytes, profile: HardwareProfile, *, allow_cpu_ops: bool,
                       progress: Progress | None = None) -> Compiled:
    """Compile with the profile's options (CompileError when the compiler refuses) and check the device."""
    from edgenas.hardware.vela import VelaEvaluator

    if progress is not None:
        progress("compile", 0, 1)
    measurement, vela = VelaEvaluator(profile).compile(tflite, per_layer=False)
    if vela is None:
        raise CompileError(f"the compiler rejected the model for {profile.name}: {measurement.error}")
    if progress is not None:
        progress("compile", 1, 1)
    ops = op_names(vela)
    check_device(measurement, ops, profile, allow_cpu_ops=allow_cpu_ops)
    return Compiled(measurement, vela, ops)


def package(tflite: bytes, compiled: Compiled, profile: HardwareProfile, task: Any, resolution: tuple[int, int],
            progress: Progress | None = None) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The package's files ({name: bytes}: the int8 file, the optimised file, its C array pair) and the
    summary fields every export carries (device figures, tensors, preprocessing, TFLM arena and ops,
    compiler, profile). Callers add what they know beyond the file (metrics, genotype, provenance) and
    a `files` entry once their file list is final (`file_entries`)."""
    from ai_edge_litert.interpreter import Interpreter

    from edgenas.hardware.vela import compiler_version

    if progress is not None:
        progress("arena", 0, 1)
    arena_int8 = tflm.int8_arena(tflite)
    arena_vela = tflm.vela_arena(compiled.vela, arena_int8)
    if progress is not None:
        progress("arena", 1, 1)
    it = Interpreter(model_content=tflite)
    (inp,) = [tensor_entry(d) for d in it.get_input_details()]
    outputs = [tensor_entry(d) for d in it.get_output_details()]
    ident, c_text, h_text = c_array_files(compiled.vela, VELA_FILE)
    files = {INT8_FILE: tflite, VELA_FILE: compiled.vela, f"{ident}.c": c_text.encode(),
             f"{ident}.h": h_text.encode()}
    registered = tflm.ops_to_register(tuple(dict.fromkeys(compiled.ops)))
    m = compiled.measurement.metrics
    summary: dict[str, Any] = {
        "fps": m["fps"],
        "inference_ms": m["inference_ms"],
        "sram_kib": m["sram_kib"],
        "offchip_flash_kib": m["offchip_flash_kib"],
        "npu_ops": int(m["npu_ops"]),
        "cpu_ops": compiled.cpu_ops,
        "cpu_op_count": int(m["cpu_ops"]),
        "input": inp,
        "outputs": outputs,
        "preprocessing": preprocessing(task, resolution, (inp["scale"], inp["zero_point"])),
        "output_units": output_units(task, resolution),
        "tflm": {
            "tensor_arena_bytes": arena_vela["arena_bytes"],
            "vela_model": arena_vela,
            "int8_model": arena_int8,
            "ops_to_register": registered,
            "op_resolver": f"tflite::MicroMutableOpResolver<{len(registered)}> resolver; "
                           + " ".join(f"resolver.{r['resolver_call']}();" for r in registered),
        },
        "c_array": {"symbol": ident, "length_symbol": f"{ident}_len", "alignment": ALIGNMENT,
                    "files": [f"{ident}.c", f"{ident}.h"]},
        "compiler": compiler_version(),
        "compiler_figures": dict(m),
        "profile": {"name": profile.name, "values": profile.to_dict(), "vela_cli_args": vela_cli_args(profile)},
    }
    return files, summary


def file_entries(files: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    """summary.json's `files`: size and SHA-256 of every file (summary.json itself excepted)."""
    return {name: {"bytes": len(b), "sha256": hashlib.sha256(b).hexdigest()} for name, b in files.items()}
