"""Which cheap accuracy estimate can a user trust (issue 9 item 5): `edgenas bench-proxies` on the flow space
and on digits-hard, printed as markdown blocks for benchmarks/RESULTS.md.

  python benchmarks/bench_proxies.py smoke [--jobs 2]     # make bench: minutes on 2 cores
  python benchmarks/bench_proxies.py full  [--jobs 2]     # the committed genotype lists; about a day of 2 cores
  python benchmarks/bench_proxies.py pilot                # the measured pilot that sized `full`
  python benchmarks/bench_proxies.py full --report-only   # train nothing: the tables of the runs kept so far

`full` on flow prints three tables from the same runs: the whole list, its randomly drawn part
(genotypes/flow_random.txt) and the seed study's 28 networks (genotypes/flow_seed.txt).

Outputs: `smoke` to runs/bench_proxies/ (<task>-smoke.json and its runs beside it), afresh each time; `full`
to benchmarks/reference/ (<task>-full.json and <task>-full.runs/), resumed where it stopped when run again.
The `full` reference is committed as it grows: its finished runs are small JSON records (figures, seeds,
seconds; no weights: the checkpoints of a training in progress stay in the ignored `*.partial/` folders), and
a day of 2 cores is spread over machines that keep nothing but the repository, so a run started on one
continues on the next (`git add benchmarks/reference` after a stretch of it).
`pilot` times, at the `full` settings and with
one torch thread, three training steps of every listed genotype and one whole epoch (with its validation)
of three of them (cheapest, median, costliest by the step timing), then prints the arithmetic of the whole
`full` run. CPU seconds (process time) are used, not wall time: the machine is shared and its load changes
by the minute.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import describe

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SMOKE_OUT = ROOT / "runs" / "bench_proxies"
FULL_OUT = BENCH / "reference"  # committed: see the module docstring
TASKS = {"flow": (BENCH / "flow_space.yaml", BENCH / "genotypes" / "flow.txt"),
         "digits": (BENCH / "digits_space.yaml", BENCH / "genotypes" / "digits.txt")}
# `full` trains these first (bench-proxies --first): the randomly drawn part of the list before the seed's
# networks, so a partial reference is a random sample of the space (issue 11's fidelity table is on them)
FIRST = {"flow": BENCH / "genotypes" / "flow_random.txt"}
# `full` also prints the table on these alone (the same runs, nothing trained for it): the seed study's own
# candidates, whose accuracy its report never measured
ALSO_ON = {"flow": BENCH / "genotypes" / "flow_seed.txt"}
SMOKE_GENOTYPES = 8


def _edgenas() -> str:
    exe = Path(sys.executable).with_name("edgenas")
    return str(exe) if exe.exists() else "edgenas"


def out_dir(preset: str) -> Path:
    """Where a preset's outputs go: `full`'s reference is committed, `smoke`'s is not."""
    return FULL_OUT if preset == "full" else SMOKE_OUT


def run_preset(preset: str, tasks: list[str], jobs: int, report_only: bool = False) -> None:
    out_dir(preset).mkdir(parents=True, exist_ok=True)
    print(f"### bench-proxies, preset {preset} ({datetime.date.today()})\n")
    print(f"Machine: {describe()}.\n")
    for name in tasks:
        cfg, lst = TASKS[name]
        out = out_dir(preset) / f"{name}-{preset}.json"
        if preset == "smoke" and not report_only:  # measured afresh each time (`full` resumes instead)
            shutil.rmtree(out.with_suffix(".runs"), ignore_errors=True)
            out.unlink(missing_ok=True)
        genotypes = str(SMOKE_GENOTYPES) if preset == "smoke" else str(lst.relative_to(ROOT))
        cmd = [_edgenas(), "bench-proxies", str(cfg.relative_to(ROOT)), "--genotypes", genotypes, "--preset", preset,
               "--jobs", str(jobs), "--out", str(out.relative_to(ROOT)), "--no-progress"]
        if preset == "full" and name in FIRST:  # trained first, and its own table: the random sample alone
            part = str(FIRST[name].relative_to(ROOT))
            cmd += ["--first", part, "--table-on", part]
        if report_only:
            cmd.append("--report-only")
        _, minutes = run_edgenas(cmd, preset)
        print_block(json.loads(out.read_text()), " ".join(["edgenas", *cmd[1:]]), minutes)
        if preset == "full" and name in ALSO_ON:
            print_also_on(cfg, lst, ALSO_ON[name], out)


def print_also_on(cfg: Path, lst: Path, part_file: Path, out: Path) -> None:
    """The table on a second part of the list, from the same kept runs."""
    from edgenas.space.space import load_space
    from edgenas.train import bench_proxies as bp

    space = load_space(cfg)
    listed = bp.read_genotypes(space, str(lst))
    part = bp.read_part(space, str(part_file), listed, field="part file")
    s = bp.summarise_part(bp.make_settings(str(cfg)), listed, out, (str(part_file.relative_to(ROOT)), part))
    n = s["genotypes"]
    print(f"The same on the genotypes of {s['part_file']} ({n['complete']} of {n['listed']} complete; the same "
          f"runs):\n")
    _print_table(s)


def run_edgenas(cmd: list[str], preset: str) -> tuple[subprocess.CompletedProcess, float]:
    """A benchmark command run to its end (its exit code, if not 0, ends this script) and its minutes of
    wall time. smoke measures every training afresh: none served from the training store (train/store.py)."""
    t0 = time.perf_counter()
    env = {**os.environ, "EDGENAS_TRAIN_STORE": "off"} if preset == "smoke" else None
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False, env=env)
    minutes = (time.perf_counter() - t0) / 60
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(proc.returncode)
    return proc, minutes


def print_block(s: dict, cmd: str, minutes: float | None = None) -> None:
    st = s["settings"]
    n = s["genotypes"]
    took = f"; {minutes:.1f} min wall" if minutes is not None else ""
    print(f"#### {s['space']} ({s['task']['name']}, {s['primary']}, "
          f"{'higher' if s['higher_is_better'] else 'lower'} is better)\n")
    print(f"Command: `{cmd}`{took}. {n['complete']} of {n['listed']} genotypes complete ({n['runs_done']} of "
          f"{n['runs_total']} runs). Resolution {st['resolution']}, {st['task'].get('train_samples', '?')} training "
          f"samples, reference {st['recipe']['epochs']} epochs (batch {st['recipe']['batch_size']}, "
          f"{st['recipe']['optimizer']} lr {st['recipe']['lr']}, {st['recipe']['scheduler']}), short training "
          f"{st['short_epochs']} epoch(s); seeds {st['seeds']}; bootstrap {s.get('bootstrap', {}).get('resamples')} "
          f"paired resamples, 95 %. Estimates are oriented so that + = ranks like seed A"
          f"{' (correlated with -' + s['primary'] + ')' if not s['higher_is_better'] else ''}. Wall seconds on "
          f"this shared machine; CPU seconds = each process's CPU time (one torch thread).\n")
    _print_table(s)
    part = s.get("part")
    if part is not None:
        print(f"The same on the genotypes of {part['part_file']} ({part['genotypes']['complete']} of "
              f"{part['genotypes']['listed']} complete; the same runs):\n")
        _print_table(part)


def _print_table(s: dict) -> None:
    from edgenas.train.bench_tables import headline, markdown_table

    if s.get("estimates"):
        ref = s["reference"]
        print(markdown_table(s))
        print(f"\nSeed A's {s['primary']}: mean {ref['metric_mean']:.3f}, range {ref['metric_range'][0]:.3f}-"
              f"{ref['metric_range'][1]:.3f}. {headline(s)}.\n")


# ---- the pilot --------------------------------------------------------------------------------------------


def _steps_cpu(c, data, steps: int = 3) -> float:
    """CPU seconds per training sample of one candidate, from `steps` timed steps after one warm-up."""
    import torch

    from edgenas.train.builder import GraphModule
    from edgenas.train.trainer import _to, batches, epoch_order

    torch.manual_seed(0)
    m = GraphModule(c.graph())
    opt = torch.optim.AdamW(m.parameters(), lr=c.recipe.lr)
    it = batches(data.train, epoch_order(len(data.train), 0, 0), c.recipe.batch_size)
    batch_list = [next(it)[1] for _ in range(steps + 1)]
    t = 0.0
    for k, batch in enumerate(batch_list):
        t0 = time.process_time()
        inputs, target = _to(batch, torch.device("cpu"))
        loss = c.task.loss(m(*inputs), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if k:
            t += time.process_time() - t0
    return t / (steps * c.recipe.batch_size)


def _epoch_cpu(c, data) -> tuple[float, float, float]:
    """(CPU seconds of one whole training epoch, of one validation pass, wall seconds of both) at the full
    settings, through the Trainer."""
    import tempfile

    import torch

    from edgenas.train.builder import GraphModule
    from edgenas.train.trainer import Trainer, evaluate

    torch.manual_seed(c.recipe.seed)
    m = GraphModule(c.graph())
    w0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        recipe = c.recipe.with_overrides(epochs=1)
        tr = Trainer(m, c.task, data, recipe, Path(tmp), identity=c.identity, device=torch.device("cpu"))
        t0 = time.process_time()
        tr._train_epoch(time.perf_counter())
        t1 = time.process_time()
        evaluate(m, c.task, data.val, batch_size=recipe.batch_size)
        t2 = time.process_time()
    return t1 - t0, t2 - t1, time.perf_counter() - w0


def _proxies_cpu(c, data) -> float:
    import torch

    from edgenas.train.bench_proxies import PROXY_BATCH, proxy_batch
    from edgenas.train.builder import GraphModule
    from edgenas.train.proxies import proxy_scores

    x, y = proxy_batch(data.train, 3, PROXY_BATCH)
    torch.manual_seed(3)
    t0 = time.process_time()
    proxy_scores(GraphModule(c.graph()), x, y, c.task.loss)
    return time.process_time() - t0


def pilot(tasks: list[str]) -> None:
    import torch

    from edgenas.train.bench_proxies import make_settings
    from edgenas.train.run import make_candidate

    torch.set_num_threads(1)
    print(f"### bench-proxies pilot: the cost of the `full` preset ({datetime.date.today()})\n")
    print(f"Command: `python benchmarks/bench_proxies.py pilot`; machine: {describe()}; one torch thread; CPU "
          f"seconds (process time).\n")
    day = 2 * 86400
    grand = 0.0
    for name in tasks:
        cfg, lst = TASKS[name]
        st = make_settings(str(cfg), preset="full")
        lines = [x.split("#", 1)[0].strip() for x in lst.read_text().splitlines()]
        lines = [x for x in lines if x]
        t0 = time.process_time()
        cands = [make_candidate(str(cfg), g) for g in lines]
        data = cands[0].task.data(cands[0].resolution, seed=cands[0].recipe.seed)  # generated once, or read
        data_cpu = time.process_time() - t0
        per_sample = [_steps_cpu(c, data) for c in cands]
        order = sorted(range(len(cands)), key=lambda i: per_sample[i])
        picks = [order[0], order[len(order) // 2], order[-1]]
        r = cands[0].recipe
        n_train = len(data.train)
        measured = []
        for i in picks:
            ep, ev, wall = _epoch_cpu(cands[i], data)
            measured.append((i, ep, ev, wall, _proxies_cpu(cands[i], data)))
        # the steps' estimate of an epoch against the measured epoch: the overhead of a whole epoch
        overhead = statistics.mean(ep / (per_sample[i] * n_train) for i, ep, _, _, _ in measured)
        eval_ratio = statistics.mean(ev / ep for _, ep, ev, _, _ in measured)
        epochs, short = r.epochs, st.short_epochs
        train_cpu = sum(per_sample) * n_train * overhead * (2 * epochs + short)
        eval_cpu = sum(per_sample) * n_train * overhead * eval_ratio * 3  # one validation per run (A, B, short)
        proxy_cpu = statistics.mean(p for *_, p in measured) * len(cands)
        total = train_cpu + eval_cpu + proxy_cpu + data_cpu
        grand += total
        print(f"#### {cfg.name}: {len(cands)} genotypes, {st.resolution[0]}x{st.resolution[1]}, {n_train} training "
              f"samples, batch {r.batch_size}, {epochs} epochs (short: {short})\n")
        print(f"- training step, CPU ms per sample over the list: mean {1000 * statistics.mean(per_sample):.2f}, "
              f"min {1000 * min(per_sample):.2f}, median {1000 * statistics.median(per_sample):.2f}, max "
              f"{1000 * max(per_sample):.2f}")
        for i, ep, ev, wall, px in measured:
            print(f"- one whole epoch of `{lines[i]}`: {ep:.1f} CPU s (+ validation {ev:.1f} s; {wall:.0f} s wall "
                  f"on this shared machine); its proxies {px:.2f} CPU s")
        print(f"- whole epoch / (steps' estimate x samples): {overhead:.2f} (data batching, the last short batch)")
        print(f"- data generation or cache read: {data_cpu:.0f} CPU s, once")
        print(f"- the `full` run: training {train_cpu / 3600:.2f} h (= sum over genotypes of CPU s per sample x "
              f"{n_train} x {overhead:.2f} x (2 x {epochs} + {short}) epochs) + validation {eval_cpu / 3600:.2f} h + "
              f"proxies {proxy_cpu / 3600:.3f} h = **{total / 3600:.2f} CPU hours**, "
              f"{total / day:.0%} of a day of 2 cores\n")
    print(f"Both tasks: {grand / 3600:.1f} CPU hours = {grand / day:.0%} of one day of 2 cores (172,800 CPU s), "
          f"with `--jobs 2`.\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", nargs="?", default="smoke", choices=("smoke", "full", "pilot"))
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--task", action="append", choices=tuple(TASKS), help="one task only (repeatable)")
    ap.add_argument("--report-only", action="store_true", help="train nothing: print the tables of the runs kept "
                    "so far (full: the committed reference)")
    a = ap.parse_args()
    tasks = a.task or list(TASKS)
    if a.mode == "pilot":
        pilot(tasks)
    else:
        run_preset(a.mode, tasks, a.jobs, a.report_only)


if __name__ == "__main__":
    main()
