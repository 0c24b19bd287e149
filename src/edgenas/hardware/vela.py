"""The Ethos-U evaluator: compile TFLite bytes with Vela's C++ core in-process and read its figures.

In-process is about 6x faster than the `vela` CLI (no interpreter start, no files). The figures are
derived exactly as the CLI derives its summary and per-layer CSVs (vela.py main(), stats_writer.py), and
`vela_cli_args(profile)` gives the CLI options that reproduce them; tests check that against the CLI.
"""

from __future__ import annotations

import faulthandler
import hashlib
import importlib.metadata
import math
import multiprocessing
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from ethosu import regor
from ethosu.vela import stats_writer
from ethosu.vela.tensor import MemArea, TensorPurpose

from edgenas.errors import CompileError, ConfigError, EdgeNasError
from edgenas.hardware import _velaconf as vc
from edgenas.hardware._capture import captured_fds
from edgenas.hardware._tflite_check import check_identifier, check_tflite
from edgenas.hardware.measurement import LayerRow, Measurement
from edgenas.hardware.profile import HardwareProfile
from edgenas.processes import child_initialiser

if TYPE_CHECKING:
    from edgenas.graph.ir import Graph

_MEMS = {"sram": "sram", "dram": "dram", "onchipflash": "onchip_flash", "offchipflash": "offchip_flash"}
_PURPOSES = ("lut", "featuremap", "scale", "weights")  # stats_writer's purpose_mapping keys; others -> unknown


def compiler_version() -> str:
    """'ethos-u-vela 5.2.0': figures change between compiler versions, so it is recorded and keyed on."""
    return "ethos-u-vela " + importlib.metadata.version("ethos-u-vela")


def _arch(profile: HardwareProfile) -> Any:
    if profile.accelerator_config is None or profile.system_config is None or profile.memory_mode is None:
        raise ConfigError(f"profile {profile.name!r} has no accelerator; it cannot be compiled for", field="hardware")
    return vc.arch_features(
        vc.ini_path(profile.vela_config), profile.accelerator_config, profile.system_config, profile.memory_mode
    )


def system_config_text(profile: HardwareProfile) -> str:
    """The sysconfig text vela.py main() hands to the compiler: architecture, selected sections, vela.ini."""
    arch = _arch(profile)
    return (
        "[architecture]\n"
        f"macs={arch.num_macs_per_cycle}\n"
        f"cores={arch.ncores}\n"
        "[vela]\n"
        f"system_config_name={arch.system_config}\n"
        f"memory_mode_name={arch.memory_mode}\n"
    ) + vc.ini_text(vc.ini_path(profile.vela_config))


def compiler_options_text(profile: HardwareProfile, *, per_layer: bool = True) -> str:
    """The options text of vela.py get_compiler_config() for `vela <args> [--verbose-performance]`.

    arena_size_limit is always explicit: left out, the in-process core plans for a much smaller arena
    than the CLI's default and reports very different figures.
    """
    return (
        "\n[compiler]\n"
        + ("enable_db=true\n" if per_layer else "")
        + "output_format=TFLite\n"
        "cop_format=COP1\n"
        "\n[scheduler]\n"
        "optimize=Performance\n"
        f"arena_size_limit={profile.arena_cache_bytes}\n"
        "disable_feature=\n"
        "cpu_tensor_alignment=16\n"
        "tensor_allocator=HillClimb\n"
        "\n[graph]\n"
        "softmax_int16_neg_exp_range=10.0\n"
    )


def compiler_options_key(profile: HardwareProfile, *, per_layer: bool = True) -> str:
    """Canonical text of everything the compiler is given besides the model (cache key material)."""
    target = vc.regor_accelerator(str(profile.accelerator_config))
    return (
        f"{compiler_version()}\n[target]\n{target}\n[sysconfig]\n{system_config_text(profile)}\n"
        f"[options]\n{compiler_options_text(profile, per_layer=per_layer)}"
    )


class VelaEvaluator:
    """Measures TFLite models on one Ethos-U profile; every failure comes back as a failed Measurement."""

    name = "vela"

    def __init__(self, profile: HardwareProfile, *, quiet: bool = True, check_input: bool = True) -> None:
        self.profile = profile
        self.quiet = quiet  # capture what the compiler prints into Measurement.log
        # Walk the flatbuffer before the C++ core sees it (~8 ms for a 100-op model); bytes from edgenas's
        # own writer can skip it.
        self.check_input = check_input
        self._arch = _arch(profile)
        self._target = vc.regor_accelerator(str(profile.accelerator_config))
        self._sysconfig = system_config_text(profile)
        self._options = {p: compiler_options_text(profile, per_layer=p) for p in (False, True)}
        self._provenance = {
            "compiler": compiler_version(),
            "evaluator": self.name,
            "profile": profile.name,
            "profile_options": profile.to_dict(),
        }

    def evaluate(self, graph: Graph, *, seed: int = 0, per_layer: bool = True) -> Measurement:
        """Write the graph as int8 TFLite (weights drawn from `seed`) and measure it."""
        from edgenas.tflite import graph_to_tflite  # the writer is only needed on this path

        try:
            tflite = graph_to_tflite(graph, seed=seed)
        except EdgeNasError as e:
            return Measurement.failed(f"writing TFLite: {e}", provenance=self._provenance)
        return self.evaluate_bytes(tflite, per_layer=per_layer)

    def evaluate_bytes(self, tflite: bytes, *, per_layer: bool = True) -> Measurement:
        return self.compile(tflite, per_layer=per_layer)[0]

    def compile(self, tflite: bytes, *, per_layer: bool = True) -> tuple[Measurement, bytes | None]:
        """Measurement plus the optimised (deployable) model bytes, None on failure."""
        problem = check_tflite(tflite) if self.check_input else check_identifier(tflite)
        if problem:
            return Measurement.failed(problem, provenance=self._provenance), None
        t0 = time.perf_counter()
        compiled, err, log = self._run(tflite, per_layer)
        if err is not None:  # the core raises RuntimeError("Compilation failed: ..."), MemoryError (bad_alloc)
            # out of memory says more about this machine (or its ulimit) than the model: not cached
            return Measurement.failed(f"{type(err).__name__}: {err}", provenance=self._provenance, log=log,
                                      retryable=isinstance(err, MemoryError)), None
        seconds = time.perf_counter() - t0
        try:
            metrics = summary_metrics(compiled.perf_report, self._arch, self.profile.core_clock_hz)
            layers = layer_rows(compiled.opt_database, compiled.perf_report, self._arch) if per_layer else ()
        except Exception as e:  # an unexpected report shape must not stop a sweep either
            msg = f"reading compiler report: {type(e).__name__}: {e}"
            return Measurement.failed(msg, provenance=self._provenance, log=log), None
        prov = {**self._provenance, "model_sha256": hashlib.sha256(tflite).hexdigest(), "compile_s": round(seconds, 6)}
        return Measurement("ok", metrics=metrics, layers=layers, provenance=prov, log=log), bytes(compiled.model)

    def evaluate_isolated(self, tflite: bytes, *, per_layer: bool = True, timeout_s: float = 300.0) -> Measurement:
        """`evaluate_bytes` in a forked child process, for models edgenas did not write itself.

        The C++ core segfaults on some malformed models that pass `check_tflite`; here that kills only
        the child. A crash is a (cacheable) failed Measurement; a timeout or a SIGKILL (e.g. the OOM killer)
        says nothing about the model and is marked retryable. The child dies with this process, and an
        interrupt here (Ctrl-C, SIGTERM) kills it.
        """
        ctx = multiprocessing.get_context("fork")
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child_evaluate, args=(self, tflite, per_layer, send, os.getpid()), daemon=True)
        proc.start()
        send.close()
        text: str | None = None
        answered = False  # the child sent a result or closed the pipe (exited) within the time limit
        try:
            answered = recv.poll(timeout_s)
            if answered:
                text = recv.recv()
        except EOFError:
            pass
        except BaseException:  # KeyboardInterrupt / Terminated: stop the child before leaving
            proc.kill()
            proc.join()
            raise
        finally:
            recv.close()
        if not answered:
            proc.kill()
        proc.join()
        if text is not None:
            return Measurement.from_json(text)
        if not answered:
            return Measurement.failed(f"compile took over {timeout_s:g} s", retryable=True, provenance=self._provenance)
        code = proc.exitcode or 0
        if code < 0:
            sig = signal.Signals(-code)
            retry = sig == signal.SIGKILL
            return Measurement.failed(f"compiler crashed ({sig.name})", retryable=retry, provenance=self._provenance)
        return Measurement.failed(f"compiler process exited with code {code}", provenance=self._provenance)

    def _run(self, tflite: bytes, per_layer: bool) -> tuple[Any, Exception | None, str]:
        """(compiled model or None, the exception or None, what the compiler printed)."""
        if not self.quiet:
            try:
                return self._compile(tflite, per_layer), None, ""
            except Exception as e:
                return None, e, ""
        with captured_fds() as box:
            try:
                compiled, err = self._compile(tflite, per_layer), None
            except Exception as e:
                compiled, err = None, e
        return compiled, err, box[0]

    def _compile(self, tflite: bytes, per_layer: bool) -> Any:
        return regor.compile(self._target, tflite, "TFLITE", self._sysconfig, options=self._options[per_layer])


def _child_evaluate(ev: VelaEvaluator, tflite: bytes, per_layer: bool, conn: Any, parent_pid: int) -> None:
    child_initialiser(parent_pid)
    faulthandler.disable()  # an expected crash should not dump a Python traceback on the parent's stderr
    try:
        conn.send(ev.evaluate_bytes(tflite, per_layer=per_layer).to_json())
    finally:
        conn.close()


def compile_to_vela_tflite(tflite: bytes, profile: HardwareProfile) -> bytes:
    """The deployable Vela-optimised model (what `vela` writes as *_vela.tflite); raises CompileError."""
    m, model = VelaEvaluator(profile).compile(tflite, per_layer=False)
    if model is None:
        raise CompileError(m.error)
    return model


def summary_metrics(report: Any, arch: Any, core_clock_hz: float) -> dict[str, float | int]:
    """The figures of `vela`'s summary CSV, derived as stats_writer.print_regor_performance_metrics does."""
    used = dict.fromkeys(_MEMS.values(), 0)
    access = dict.fromkeys(_MEMS.values(), 0)
    moved = dict.fromkeys(_MEMS.values(), 0)
    present = set()
    for mem_name, mem in report.memories.items():
        key = str(mem_name).lower()
        if key in ("lutram", "shram") or key not in _MEMS:
            continue
        k = _MEMS[key]
        present.add(k)
        access[k] += mem.totalAccessCycles
        used[k] = mem.peakUsage
        per_purpose: dict[str, int] = {}  # the CLI assigns per purpose (last one wins), then sums
        for a in mem.accesses.values():
            purpose = str(a.accessType).lower()
            per_purpose[purpose if purpose in _PURPOSES else "unknown"] = a.bytesRead + a.bytesWritten
        moved[k] = sum(per_purpose.values())
    # Sram_Only: read-only data shares the SRAM but is reported apart as on-chip flash.
    if (
        report.readOnlyPeakUsage > 0
        and arch.tensor_storage_mem_area[TensorPurpose.Weights] == MemArea.OnChipFlash
        and "onchip_flash" not in present
    ):
        used["onchip_flash"] = report.readOnlyPeakUsage
        used["sram"] = used["sram"] - report.readOnlyPeakUsage
    total = int(report.totalCycles)
    seconds = total / core_clock_hz
    metrics: dict[str, float | int] = {
        "fps": 1.0 / seconds if seconds > 0 else math.nan,
        "inference_ms": seconds * 1000.0,
        "cycles_total": total,
        "cycles_npu": int(report.npuCycles),
    }
    metrics.update({f"cycles_{k}_access": int(v) for k, v in access.items()})
    metrics.update({f"{k}_kib": v / 1024.0 for k, v in used.items()})
    metrics.update({f"{k}_total_bytes": int(v) for k, v in moved.items()})
    metrics.update(
        npu_ops=int(report.npuOps),
        cpu_ops=int(report.cpuOps),
        cascades=int(report.cascades),
        cascaded_ops=int(report.cascadedOps),
        encoded_weight_bytes=int(report.encodedWeights),
        original_weight_bytes=int(report.originalWeights),
        macs=int(report.macCount),
    )
    return metrics


def _num(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def layer_rows(db: Any, report: Any, arch: Any) -> tuple[LayerRow, ...]:
    """The rows of `vela --verbose-performance`'s per-layer CSV, by the CLI's own post-processing."""
    if db is None or "perf" not in db.tables:
        return ()
    header, rows = stats_writer.postprocess_regor_performance_database(arch, db, report)
    col = {h: i for i, h in enumerate(header)}

    def n(row: list[str], name: str) -> int:
        v = _num(row[col[name]])
        return int(v) if math.isfinite(v) else 0

    return tuple(
        LayerRow(
            original_op=row[col["Original Operator"]],
            nng_op=row[col["NNG Operator"]],
            target=row[col["Target"]],
            name=row[col["Name"]],
            cycles=n(row, "Op Cycles"),
            npu_cycles=n(row, "NPU"),
            sram_ac=n(row, "SRAM AC"),
            dram_ac=n(row, "DRAM AC"),
            onflash_ac=n(row, "OnFlash AC"),
            offflash_ac=n(row, "OffFlash AC"),
            macs=n(row, "MAC Count"),
            util_pct=_num(row[col["Util% (MAC)"]]),
            staging_usage=n(row, "Staging Usage"),
        )
        for row in rows
    )
