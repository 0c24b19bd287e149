"""`edgenas pipeline PIPELINE.yaml`: search -> train -> prune -> quantize -> export, resumable, with a report.

A pipeline file names the space config (`config:`, relative to the pipeline file), the hardware profile, the
output folder and ordered `stages:`, each `{stage: NAME, ...settings}`. Everything is validated before any
file is written (one ConfigError naming the file and field). Each stage works in its own sub-folder of the
output folder and is recorded in `pipeline.json` (written atomically when a stage starts and when it ends):
with its fingerprint (a hash of its settings chained to the previous stage's, the space config's merged
mapping and the profile), a start counter, its outputs and its figures. Running the same command again skips
the stages whose fingerprint is unchanged and done, resumes an interrupted stage in place (training and
fine-tuning from the trainer's checkpoint, the search from its own Optuna storage; quantize and export are
redone, they are short), and redoes a stage whose settings changed together with every stage after it.

Why the pieces are joined here rather than through their one-call APIs:
- The search runs as the `edgenas search` command in a child process (it dies with this one): `export/` may
  not import `search/` (ARCHITECTURE.md); the front comes back as the command's CSV, and the command's own
  resume (same storage, same study) resumes an interrupted search.
- An interrupted prune stage calls `prune_and_finetune(resume=True)`: it repeats the scoring and pruning
  (deterministic functions of the trained weights) and resumes the fine-tune's trainer. The resume test
  checks that this gives the same weights as an uninterrupted stage.
- `deploy.build_export` quantises a genotype's network itself and cannot take a pruned Graph or a QAT'd
  file; the export stage compiles the quantize stage's file with the same helpers (`_export_files`).

The modules: `pipeline_file.py` reads and validates the file, `pipeline_stages.py` runs each stage,
`pipeline_report.py` writes report.md; this one keeps the state and runs the stages in order.

Figures per stage, all at the pipeline's resolution: params and MACs of the stage's Graph; FPS and SRAM from
Vela for the profile (float stages: the Graph written as int8 with the writer's random weights, as the
search measures it; quantize and export: the real int8 file); model size = the stage's model file (float32
TFLite for float stages, the int8 file, the Vela-optimised file); the task's primary metric on its
validation set (float module after train/prune, the int8 file in LiteRT after quantize, `int8_eval`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

from edgenas import atomic
from edgenas.export.pipeline_file import STATE_FILE, STATE_FORMAT, Pipeline, Stage, load_pipeline
from edgenas.export.pipeline_report import figure_text, render_report
from edgenas.export.pipeline_stages import RUNNERS, Say, StageContext, validate_search

REPORT_FILE = "report.md"

__all__ = ["REPORT_FILE", "Pipeline", "fingerprints", "load_pipeline", "plan", "run_pipeline"]


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fingerprints(p: Pipeline) -> dict[str, str]:
    """Each stage's fingerprint: its settings chained to the previous stage's; the first chains to the space
    config, the profile and the given genotype/checkpoint."""
    from edgenas.export.deploy import sha256_file

    root = _hash({"config": p.config_mapping, "profile": p.profile.to_dict(), "genotype": p.genotype,
                  "checkpoint": sha256_file(p.checkpoint) if p.checkpoint else None})
    out, prev = {}, root
    for s in p.stages:
        prev = out[s.name] = _hash({"previous": prev, "stage": s.name, "settings": s.settings})
    return out


def _load_state(out: Path) -> dict[str, Any]:
    path = out / STATE_FILE
    if path.is_file():
        return json.loads(path.read_text())
    return {"format": STATE_FORMAT, "stages": {}}


def _save_state(out: Path, state: dict[str, Any]) -> None:
    atomic.write_text(out / STATE_FILE, json.dumps(state, indent=1, default=_json_default) + "\n", fsync=True)


def _json_default(v: Any) -> Any:
    if hasattr(v, "item"):  # numpy / torch scalars
        return v.item()
    return str(v)


def plan(p: Pipeline) -> list[tuple[Stage, str, str]]:
    """What a run will do with each stage, from pipeline.json, without writing: [(stage, action, why)],
    action "keep", "resume" or "run"."""
    fps = fingerprints(p)
    state = _load_state(p.out)
    out: list[tuple[Stage, str, str]] = []
    ran = False  # once a stage runs, every later one runs on its new outputs
    for k, s in enumerate(p.stages):
        entry = state["stages"].get(s.name)
        fp = fps[s.name]
        if entry is None:
            why = "running"
        elif ran or entry.get("status") == "invalidated":
            why = "an earlier stage ran again: running it again"
        elif entry.get("fingerprint") != fp:
            later = len(p.stages) - k - 1
            why = (f"settings changed since the last run (fingerprint {entry.get('fingerprint')} -> {fp}): redoing "
                   "it" + (f" and the {later} stage(s) after it" if later else ""))
        elif entry.get("status") == "done" and _outputs_exist(p.out, entry):
            out.append((s, "keep", f"done before (fingerprint {fp}), kept"))
            continue
        elif entry.get("status") == "running":
            out.append((s, "resume", "resuming the interrupted stage"))
            ran = True
            continue
        else:
            why = "its outputs are missing: running it again"
        out.append((s, "run", why))
        ran = True
    return out


def _outputs_exist(out: Path, entry: dict[str, Any]) -> bool:
    outs = entry.get("outputs") or {}
    return all((out / outs[k]).exists() for k in ("checkpoint", "model", "front", "summary") if k in outs)


def run_pipeline(p: Pipeline, say: Say = lambda s: None) -> dict[str, Any]:
    """Run (or continue) the pipeline; returns the final state. Writes report.md at the end."""
    import tempfile

    steps = plan(p)
    if any(s.name == "search" and action == "run" for s, action, _ in steps):  # a resumed one was checked
        with tempfile.TemporaryDirectory(prefix="edgenas-pipeline-") as work:
            validate_search(p, Path(work))  # before anything is written
    fps = fingerprints(p)
    p.out.mkdir(parents=True, exist_ok=True)
    state = _load_state(p.out)
    state.update(format=STATE_FORMAT, pipeline=p.source, config=p.config, profile=p.profile.name)
    names = [s.name for s in p.stages]
    for old in [n for n in state["stages"] if n not in names]:
        say(f"{old}: no longer in the pipeline; its folder is removed")
        shutil.rmtree(p.out / old, ignore_errors=True)
        del state["stages"][old]
    ctx = StageContext(p, state, say)
    for k, (s, action, why) in enumerate(steps):
        label = f"[{k + 1}/{len(p.stages)}] {s.name}"
        say(f"{label}: {why}")
        if action == "keep":
            continue
        old = state["stages"].get(s.name) if action == "resume" else None
        if old is None:
            shutil.rmtree(p.out / s.name, ignore_errors=True)
        entry = {"fingerprint": fps[s.name], "status": "running", "dir": s.name, "settings": s.settings,
                 "starts": (state["stages"].get(s.name) or {}).get("starts", 0) + 1, "started": time.time(),
                 "seconds": old.get("seconds", 0.0) if old else 0.0}
        state["stages"][s.name] = entry
        for later in p.stages[k + 1:]:  # their inputs change: forget their outputs, keep their start counts
            if later.name in state["stages"]:
                state["stages"][later.name] = {"status": "invalidated",
                                               "starts": state["stages"][later.name].get("starts", 0)}
                shutil.rmtree(p.out / later.name, ignore_errors=True)
        _save_state(p.out, state)
        t0 = time.perf_counter()
        (p.out / s.name).mkdir(parents=True, exist_ok=True)
        outputs, figures = RUNNERS[s.name](ctx, s, p.out / s.name, action == "resume")
        entry.update(status="done", outputs=outputs, figures=figures, finished=time.time(),
                     seconds=entry["seconds"] + time.perf_counter() - t0)
        _save_state(p.out, state)
        say(f"{label}: done in {time.perf_counter() - t0:.0f} s ({figure_text(figures)})")
    atomic.write_text(p.out / REPORT_FILE, render_report(p, state), fsync=True)
    return state
