"""Does the weight-sharing supernet rank networks like stand-alone training (issue 11 item 4)?
`edgenas bench-supernet` on digits-hard (smoke) or on the flow space and digits-hard (full), printed as
markdown blocks for benchmarks/RESULTS.md.

  python benchmarks/bench_supernet.py smoke [--jobs 2]   # make bench: minutes on 2 cores (digits-hard)
  python benchmarks/bench_supernet.py full  [--jobs 2]   # the committed lists; resumes when run again
  python benchmarks/bench_supernet.py pilot [--task flow] # CPU cost of the full preset's supernets, measured

Outputs go to <task>-<preset>.json with the supernets and their scores beside it (<task>-<preset>.runs/), in
runs/bench_supernet/ (smoke) or benchmarks/reference/supernets/ (full: committed without the checkpoints, so
a supernet trained and scored in one session is never trained again). The reference is bench-proxies' run
folder of the same task and preset, <task>-<preset>.runs in benchmarks/reference/ (full, committed) or
runs/bench_proxies/ (smoke) (`python benchmarks/bench_proxies.py`): its finished runs are read,
and what is missing is trained into it by bench-proxies' own code. `smoke` starts its supernets afresh each
time (and reuses the reference of a bench_proxies.py smoke run just before it, as `make bench` runs them, when
it has the same settings); `full` resumes. --out-dir / --reference-dir put both elsewhere (e.g. /tmp).
`full --supernets-only` trains the supernets while `bench_proxies.py full` trains the reference in another
process (the reference is read as it stands; the table covers the genotypes it has finished so far).

`pilot` times, at the `full` settings with one torch thread, training steps of each strategy's supernet
through the stand-alone Trainer's own step (after one warm-up step; the sampled sub-networks are the run's
first ones) and the scoring of a few listed genotypes (BatchNorm recalibration + validation), then prints
the arithmetic of the whole `full` supernet cost. CPU seconds (process time), as bench_proxies.py's pilot.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import statistics
import time
from pathlib import Path

import bench_proxies
from bench_proxies import FIRST, TASKS, _edgenas, run_edgenas  # the same tasks and lists as bench-proxies
from machine import describe

ROOT = Path(__file__).resolve().parents[1]
PRESET_TASKS = {"smoke": ["digits"], "full": ["flow", "digits"]}
SMOKE_GENOTYPES = 8  # as bench_proxies.py smoke, so its reference is reused when it ran just before


def supernet_dir(preset: str) -> Path:
    """Where a preset's supernets go: `full`'s finished records (train.json, scores.json, the tables) are
    committed beside the reference (bench_proxies.py's docstring says why), its checkpoints are not."""
    return bench_proxies.FULL_OUT / "supernets" if preset == "full" else ROOT / "runs" / "bench_supernet"


def _rel(p: Path) -> str:
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


def run_preset(preset: str, tasks: list[str], jobs: int, out_dir: Path, ref_dir: Path, *,
               strategies: str | None = None, reference_training: bool = True, lr: float | None = None,
               split: str | None = None) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"### bench-supernet, preset {preset} ({datetime.date.today()})\n")
    print(f"Machine: {describe()}.\n")
    for name in tasks:
        cfg, lst = TASKS[name]
        # another learning rate or few-shot supernets: other supernets, in their own folder beside the default
        tail = ("" if lr is None else f"-lr{lr:g}") + ("" if split is None else f"-split-{split}")
        out = out_dir / f"{name}-{preset}{tail}.json"
        ref = ref_dir / f"{name}-{preset}.json"
        if preset == "smoke":  # the supernets measured afresh each time (`full` resumes instead)
            shutil.rmtree(out.with_suffix(".runs"), ignore_errors=True)
            out.unlink(missing_ok=True)
        genotypes = str(SMOKE_GENOTYPES) if preset == "smoke" else _rel(lst)
        cmd = [_edgenas(), "bench-supernet", _rel(cfg), "--genotypes", genotypes, "--preset", preset,
               "--jobs", str(jobs), "--reference", _rel(ref), "--out", _rel(out)]
        if strategies:
            cmd += ["--strategies", strategies]
        if lr is not None:
            cmd += ["--supernet-lr", f"{lr:g}"]
        if split is not None:
            cmd += ["--split", split]
        if preset == "full" and name in FIRST:  # the table on the randomly drawn part of the list as well
            cmd += ["--table-on", _rel(FIRST[name])]
        if not reference_training:
            cmd.append("--no-reference-training")
        proc, minutes = run_edgenas(cmd, preset)
        print_block(json.loads(out.read_text()), " ".join(["edgenas", *cmd[1:]]), minutes, proc.stderr)


def print_block(s: dict, cmd: str, minutes: float | None = None, log: str = "") -> None:
    from edgenas.train.bench_supernet import headline
    from edgenas.train.bench_tables import markdown_table

    st, sn = s["settings"], s["supernet_settings"]
    n = s["genotypes"]
    took = f"; {minutes:.1f} min wall" if minutes is not None else ""
    print(f"#### {s['space']} ({s['task']['name']}, {s['primary']}, "
          f"{'higher' if s['higher_is_better'] else 'lower'} is better)\n")
    print(f"Command: `{cmd}`{took}. {n['complete']} of {n['listed']} genotypes complete. Reference "
          f"({s['reference_file']}): {n['runs_done']} of {n['runs_total']} bench-proxies runs kept. Resolution "
          f"{st['resolution']}, {st['task'].get('train_samples', '?')} training samples, reference "
          f"{st['recipe']['epochs']} epochs (batch {st['recipe']['batch_size']}, {st['recipe']['optimizer']} lr "
          f"{st['recipe']['lr']}, {st['recipe']['scheduler']}), short training {st['short_epochs']} epoch(s). "
          f"Supernets: seed {sn['seed']}, lr {sn.get('lr', st['recipe']['lr'])}, epochs {sn['epochs']} "
          f"({sn['budget_rule']}), section {sn['section']}.\n")
    for strategy, info in s["supernet"].items():
        if info.get("status") == "not trained":
            print(f"- {strategy}: not trained")
            continue
        cpu = info["cpu_seconds_total"]
        cpu_text = (f"{cpu:.0f} CPU s" if cpu is not None else
                    "CPU s unknown: its training resumed a checkpoint written before CPU time was kept")
        print(f"- {strategy}: training {info['train_seconds']:.0f} s wall, data preparation "
              f"{info['setup_seconds']:.1f} s, BatchNorm recalibration {info['recalibration_seconds']:.1f} s and "
              f"scoring {info['scoring_seconds']:.1f} s for {info['genotypes_scored']} genotypes: "
              f"{info['seconds_total']:.0f} s in all ({cpu_text})"
              + (f"; largest `{info['largest']}`, smallest `{info['smallest']}`" if info.get("largest") else ""))
    reused = [line for line in log.splitlines() if "runs were kept" in line]
    if reused:
        print(f"- {reused[0].strip()}")
    print()
    if s.get("estimates"):
        print(markdown_table(s))
        print(f"\n{headline(s)}.\n")
    part = s.get("part")
    if part is not None and part.get("estimates"):
        print(f"The same on the {part['genotypes']['listed']} genotypes of {part['part_file']} (the same supernets, "
              f"trained for the whole list; {part['genotypes']['complete']} complete):\n")
        print(markdown_table(part))
        print(f"\n{headline(part)}.\n")


def _pilot_strategy(s, strategy: str, tmp: Path, listed: list, steps: int, scored: int) -> tuple[float, float, int]:
    """(CPU s per training step, CPU s per scored genotype, steps per epoch) of one strategy at `s`."""
    import torch

    from edgenas.space.space import load_space
    from edgenas.train.bench_supernet import _prepare_folder
    from edgenas.train.supernet.evaluate import SubnetEvaluator
    from edgenas.train.supernet.run import LoadedSupernet, _step_fn, make_setup, prepare_supernet
    from edgenas.train.supernet.supernet import Supernet
    from edgenas.train.supernet.updates import KeepUnused
    from edgenas.train.trainer import Trainer, batches, epoch_order

    folder = tmp / strategy
    _prepare_folder(s, strategy, folder, load_space(s.reference.config).space_key)
    setup = make_setup(str(folder / "config.yaml"))
    prep = prepare_supernet(setup, folder / "supernet")
    torch.manual_seed(setup.recipe.seed)
    data = setup.task.data(setup.resolution, seed=setup.recipe.seed)
    net = Supernet(setup.space, prep.store, prep.extremes.largest)
    tr = Trainer(net, setup.task, data, setup.recipe, folder / "supernet", identity=prep.identity,
                 device=torch.device("cpu"))
    keep = KeepUnused(prep.store, tr.opt)
    tr.step_fn = _step_fn(setup, net, prep.extremes, keep)
    per_step = []
    order = epoch_order(len(data.train), setup.recipe.seed, 0)
    for b, (_, batch) in enumerate(batches(data.train, order, setup.recipe.batch_size)):
        if b > steps:
            break
        c0 = time.process_time()
        tr._step(b, batch)
        if b:
            per_step.append(time.process_time() - c0)
    loaded = LoadedSupernet(setup, net, prep.extremes, {}, folder / "supernet")
    ev = SubnetEvaluator(loaded, setup.resolution, setup.recipe.batch_size)
    per_g = []
    for g in listed[:: max(1, len(listed) // scored)][:scored]:
        c0 = time.process_time()
        ev.score(g)
        per_g.append(time.process_time() - c0)
    steps_per_epoch = -(-len(data.train) // setup.recipe.batch_size)
    return statistics.mean(per_step), statistics.mean(per_g), steps_per_epoch


def pilot(tasks: list[str], steps: int, scored: int) -> None:
    import tempfile

    import torch

    from edgenas.space.space import load_space
    from edgenas.train.bench_proxies import read_genotypes
    from edgenas.train.bench_supernet import make_settings

    torch.set_num_threads(1)
    print(f"### bench-supernet pilot: the cost of the `full` preset's supernets ({datetime.date.today()})\n")
    print(f"Command: `python benchmarks/bench_supernet.py pilot --steps {steps} --scored {scored}`; machine: "
          f"{describe()}; one torch thread; CPU seconds (process time).\n")
    for name in tasks:
        cfg, lst = TASKS[name]
        listed = read_genotypes(load_space(cfg), str(lst))
        s = make_settings(str(cfg), len(listed), preset="full")
        print(f"#### {cfg.name}: {len(listed)} genotypes, {s.reference.resolution[0]}x{s.reference.resolution[1]}, "
              f"batch {s.reference.recipe['batch_size']}, epochs {s.epochs}\n")
        with tempfile.TemporaryDirectory() as tmp:
            for st in s.strategies:
                step, per_g, spe = _pilot_strategy(s, st, Path(tmp), listed, steps, scored)
                train = step * spe * s.epochs[st]
                total = train + per_g * len(listed)
                print(f"- {st}: {step:.3f} CPU s per step (mean of {steps}), {spe} steps per epoch x "
                      f"{s.epochs[st]} epochs = {train / 3600:.2f} CPU h of training; scoring {per_g:.2f} CPU s "
                      f"per genotype (mean of {scored}) x {len(listed)}; **{total / 3600:.2f} CPU hours** in all")
        print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", nargs="?", default="smoke", choices=("smoke", "full", "pilot"))
    ap.add_argument("--steps", type=int, default=8, help="pilot: timed training steps per strategy")
    ap.add_argument("--scored", type=int, default=3, help="pilot: genotypes scored per strategy")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--task", action="append", choices=tuple(TASKS), help="one task only (repeatable)")
    ap.add_argument("--strategies", help="comma-separated (default: all of edgenas bench-supernet's)")
    ap.add_argument("--supernets-only", action="store_true",
                    help="read the reference as it stands (bench_proxies.py may be training it meanwhile in "
                    "another process) and train only the supernets")
    ap.add_argument("--lr", type=float, help="the supernets' learning rate (default: the reference's); its runs go "
                    "to <task>-<preset>-lr<LR>.json/.runs")
    ap.add_argument("--split", help="few-shot supernets split by this choice (flow: backbone, digits: "
                    "stage0_block); runs go to <task>-<preset>-split-<CHOICE>.json/.runs")
    ap.add_argument("--out-dir", type=Path, help="where the supernets and their tables go (default: "
                    "benchmarks/reference/supernets for full, runs/bench_supernet for smoke)")
    ap.add_argument("--reference-dir", type=Path,
                    help="where bench_proxies.py keeps <task>-<preset>.json and its runs (default: "
                    "benchmarks/reference for full, runs/bench_proxies for smoke)")
    a = ap.parse_args()
    if a.mode == "pilot":
        pilot(a.task or PRESET_TASKS["full"], a.steps, a.scored)
        return
    run_preset(a.mode, a.task or PRESET_TASKS[a.mode], a.jobs, (a.out_dir or supernet_dir(a.mode)).resolve(),
               (a.reference_dir or bench_proxies.out_dir(a.mode)).resolve(),
               strategies=a.strategies, reference_training=not a.supernets_only, lr=a.lr, split=a.split)


if __name__ == "__main__":
    main()
