"""The `supernet` evaluator of `edgenas search`, on a 12-network flow space and a supernet trained for a few
steps in a fixture.

Against independent truths: its scores are `evaluate_subnets`'s (the supernet's own scoring path) for the same
genotype and settings; which candidates are over the device's SRAM is read from the compiler's measurements in
the study's database (Vela's own verdict), and none of them reaches the supernet; every compiler figure is in
the evaluation log before the first supernet estimate; `edgenas worker` processes on a real PostgreSQL study
open the checkpoint once each, counted by a Python audit hook (`open` events) planted through sitecustomize,
not by the evaluator itself. Bad input (another space or task, a choice outside the supernet, unknown options)
is one line and exit code 2.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import torch
from pg_server import PgServer, pg_server  # noqa: F401  (the fixture)
from search_helpers import EDGENAS, trials_of

from edgenas.errors import ConfigError
from edgenas.search.study import prepare_from_file
from edgenas.search.supernet_eval import loads_in_process
from edgenas.train.supernet import evaluate_subnets, load_supernet, make_setup, train_supernet

torch.set_num_threads(1)

# 2 x 3 x 2 = 12 networks; compiled at 32x32 on an Ethos-U55-256 with 30 KiB of SRAM, the mbconv_e6 heads do
# not fit (Vela: 31 KiB, over_sram) and the others do (28-29 KiB). The supernet is trained and scores at 16x16.
CONFIG = """\
extends: flow_head_upsample
name: snsearch
resolutions: [16x16]
widths: {{stem: 8, encoder: 16, encoder_units: 2, head0: {head0}, head1: 8, head2: 8}}
tied: {{}}
choices:
  backbone: [shufflenet, resnet]
  head1_block: [conv3x3, dsconv3x3, mbconv_e6]
  head2_block: [conv3x3, dsconv3x3{extra}]
task: {{type: flow, train_samples: 24, val_samples: {val}}}
train: {{epochs: 1, batch_size: 8, lr: 0.004, threads: 1, checkpoint_every: 2}}
supernet: {{strategy: sandwich, random: 1, bn_samples: 16, bn_batch_size: 8}}
hardware: ["ethos-u55-256:sram_kib=30"]
search:
  resolution: 32x32
  objectives: [{{metric: epe, direction: min}}, {{metric: fps, direction: max}}]
  constraints: ["sram_kib <= device"]
  evaluators: [compiler, {{type: supernet, checkpoint: {ckpt}{opts}}}]
  trials: {trials}
  seed: 3
"""
SIZE = 12


def config(head0: int = 16, extra: str = "", val: int = 8, ckpt: str = "sn", opts: str = "",
           trials: int = SIZE) -> str:
    return CONFIG.format(head0=head0, extra=extra, val=val, ckpt=ckpt, opts=opts, trials=trials)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("snsearch")
    (d / "cfg.yaml").write_text(config())
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGENAS_DATA_CACHE", str(d / "cache"))
        train_supernet(make_setup(str(d / "cfg.yaml")), d / "sn")
    return d


@pytest.fixture(autouse=True)
def _env(trained, monkeypatch):
    monkeypatch.setenv("EDGENAS_DATA_CACHE", str(trained / "cache"))
    monkeypatch.setenv("EDGENAS_CACHE", str(trained / "compiler-cache.sqlite"))


def _stage(setup, name: str = "supernet"):
    return next(s for s in setup.problem.stages if s.name == name)


def test_scores_are_evaluate_subnets_scores(trained: Path) -> None:
    setup = prepare_from_file(trained / "cfg.yaml")
    stage = _stage(setup)
    assert stage.cost == "expensive" and setup.problem.stages[-1] is stage  # after the compiler
    gs = list(setup.space.enumerate())[::4]
    mine = [stage.evaluator.evaluate(g) for g in gs]
    ref = evaluate_subnets(trained / "sn", [str(g) for g in gs])
    assert [m["epe"] for m in mine] == [r.metrics["epe"] for r in ref]
    assert len({m["epe"] for m in mine}) == len(gs)  # the candidates are told apart
    for m in mine:
        assert m["supernet_seconds"] > 0
        assert m["supernet_seconds"] == pytest.approx(m["supernet_recalibration_seconds"]
                                                      + m["supernet_score_seconds"], abs=2e-4)

    # other BatchNorm settings: the supernet's own path with the same settings
    text = (trained / "cfg.yaml").read_text().replace("checkpoint: sn}", "checkpoint: sn, bn_samples: 8, seed: 5}")
    (trained / "other.yaml").write_text(text)
    other = _stage(prepare_from_file(trained / "other.yaml"))
    assert other.key != stage.key  # other settings: results stored apart
    loaded = load_supernet(trained / "sn")
    loaded.setup.settings = loaded.setup.settings.with_overrides(bn_samples=8, seed=5)
    ref2 = evaluate_subnets(loaded, [str(g) for g in gs])
    assert [other.evaluator.evaluate(g)["epe"] for g in gs] == [r.metrics["epe"] for r in ref2]
    assert ref2[0].metrics["epe"] != ref[0].metrics["epe"]
    # val_samples: the pixel-weighted EPE of the first N validation samples, from the library's collated set
    (trained / "val3.yaml").write_text(text.replace("bn_samples: 8, seed: 5}", "val_samples: 3}"))
    three = _stage(prepare_from_file(trained / "val3.yaml")).evaluator
    from edgenas.train.supernet.evaluate import SubnetEvaluator
    from edgenas.train.tasks.flow import flow_metric_sums

    full = SubnetEvaluator(load_supernet(trained / "sn"))
    xs = [torch.cat([b[0][i] for b in full.val_batches])[:3] for i in range(len(full.val_batches[0][0]))]
    target = torch.cat([b[1] for b in full.val_batches])[:3]
    for g in gs[:2]:
        module, _ = full.module(g)
        with torch.no_grad():
            total, count = flow_metric_sums(module(*xs)[-1], target)["epe"]
        assert three.evaluate(g)["epe"] == pytest.approx(total / count, rel=1e-6)
    assert three.evaluate(gs[0])["epe"] != mine[0]["epe"]  # 3 of the 8 samples: another figure
    # two evaluators of one process share one loaded supernet
    assert loads_in_process(trained / "sn") == 1


def test_search_compiles_everything_first_and_never_scores_over_sram(trained: Path, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    env = {**os.environ}
    r = subprocess.run([EDGENAS, "search", str(trained / "cfg.yaml"), "--storage", f"sqlite:///{db}", "--study", "s",
                        "--no-progress"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    con = sqlite3.connect(db)
    evals = con.execute("SELECT id, arch_id, evaluator, trial_number FROM edgenas_evaluations ORDER BY id").fetchall()
    meas = con.execute("SELECT arch_id, evaluator, metrics FROM edgenas_measurements").fetchall()
    con.close()
    compiler = [e for e in evals if e[2].startswith("compiler:")]
    supernet = [e for e in evals if e[2].startswith("supernet:")]
    # every candidate compiled once, before any accuracy estimate
    assert len(compiler) == SIZE and len({e[1] for e in compiler}) == SIZE
    assert supernet and max(e[0] for e in compiler) < min(e[0] for e in supernet)
    # Vela's verdict per candidate, from its stored measurement
    over = {a for a, ev, m in meas if ev.startswith("compiler:")
            and (json.loads(m)["over_sram"] or json.loads(m)["sram_kib"] > 30)}
    assert 0 < len(over) < SIZE
    assert not {e[1] for e in supernet} & over
    trials = [t for t in trials_of(db, "s") if t["state"] == "COMPLETE"]
    assert len(trials) == SIZE
    scored = Counter(e[1] for e in supernet)
    for t in trials:
        rec = t["attrs"]["edgenas"]
        if t["attrs"]["arch_id"] in over:
            assert not rec["feasible"] and "supernet" in rec["skipped"] and "epe" not in rec["metrics"]
        else:
            assert rec["feasible"] and scored[t["attrs"]["arch_id"]] == 1 and rec["metrics"]["epe"] > 0
    assert len(supernet) == SIZE - len(over)  # each feasible candidate scored once, nothing else


@pytest.mark.parametrize("kwargs, words", [
    (dict(head0=24), ["another space", "supernet.json"]),
    (dict(val=16), ["another task", "val_samples", "supernet.json"]),
    (dict(extra=", conv5x5"), ["head2_block=conv5x5 is outside the supernet", "supernet.json"]),
    (dict(opts=", bn_sample: 4"), ["search.evaluators[1].bn_sample", "unknown option", "bn_samples"]),
    (dict(opts=", resolution: 15x15"), ["search.evaluators[1].resolution", "stride"]),
    (dict(ckpt="nowhere"), ["search.evaluators[1].checkpoint", "nowhere"]),
])
def test_bad_input_is_one_line(trained: Path, kwargs: dict, words: list[str]) -> None:
    path = trained / "bad.yaml"
    path.write_text(config(**kwargs))
    with pytest.raises(ConfigError) as e:
        prepare_from_file(path)
    text = str(e.value)
    assert "\n" not in text and all(w in text for w in words), text


def test_enqueue_outside_the_space_is_one_line(trained: Path) -> None:
    (trained / "enq.yaml").write_text(config() + "  enqueue: [head1_block=conv3x3, head2_block=conv7x7]\n")
    with pytest.raises(ConfigError) as e:
        prepare_from_file(trained / "enq.yaml")
    assert "search.enqueue[1]" in str(e.value) and "conv7x7" in str(e.value) and "\n" not in str(e.value)


def test_a_split_supernet_scores_like_its_parts(trained: Path) -> None:
    import shutil

    split = trained / "sn_split"
    if not split.exists():
        train_supernet(make_setup(str(trained / "cfg.yaml"), split="backbone"), split)
    (trained / "split.yaml").write_text(config(ckpt="sn_split"))
    stage = _stage(prepare_from_file(trained / "split.yaml"))
    gs = list(prepare_from_file(trained / "split.yaml").space.enumerate())[::3]
    assert {g.as_dict()["backbone"] for g in gs} == {"shufflenet", "resnet"}
    for g in gs:  # the search's score is the score of the part holding the genotype's backbone
        part = load_supernet(split / f"backbone={g.as_dict()['backbone']}")
        assert stage.evaluator.evaluate(g)["epe"] == evaluate_subnets(part, [str(g)])[0].metrics["epe"]
    assert stage.key != _stage(prepare_from_file(trained / "cfg.yaml")).key
    # a part missing: refused when the search is set up
    broken = trained / "sn_split_broken"
    shutil.copytree(split, broken, dirs_exist_ok=True)
    (broken / "backbone=resnet" / "checkpoint.pt").unlink()
    (trained / "broken.yaml").write_text(config(ckpt="sn_split_broken"))
    with pytest.raises(ConfigError, match=r"no backbone=resnet/checkpoint.pt"):
        prepare_from_file(trained / "broken.yaml")
    # one part alone holds its own backbone only: a search over both is refused when it is set up
    (trained / "one_part.yaml").write_text(config(ckpt="sn_split/backbone=resnet"))
    with pytest.raises(ConfigError, match="backbone=shufflenet is outside the supernet"):
        prepare_from_file(trained / "one_part.yaml")


def test_a_supernet_still_training_is_refused(trained: Path) -> None:
    import shutil

    running = trained / "sn_running"
    if not running.exists():
        shutil.copytree(trained / "sn", running)
        meta = json.loads((running / "supernet.json").read_text())
        (running / "supernet.json").write_text(json.dumps({**meta, "status": "running"}))
    (trained / "running.yaml").write_text(config(ckpt="sn_running"))
    with pytest.raises(ConfigError, match="still training"):
        prepare_from_file(trained / "running.yaml")


def test_bad_checkpoint_exits_2_before_anything_is_written(trained: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(config(head0=24, ckpt=str(trained / "sn")))
    db = tmp_path / "s.db"
    r = subprocess.run([EDGENAS, "search", str(path), "--storage", f"sqlite:///{db}", "--study", "s", "--no-progress"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "another space" in r.stderr and str(trained / "sn" / "supernet.json") in r.stderr
    assert not db.exists()


AUDIT = """\
import os, sys
_TARGET = os.environ.get("AUDIT_OPEN_TARGET")
_LOG = os.environ.get("AUDIT_OPEN_LOG")
def _hook(event, args):
    if event == "open" and _TARGET and _LOG and isinstance(args[0], (str, os.PathLike)) \
            and os.path.abspath(os.fspath(args[0])) == _TARGET:
        with open(_LOG, "a") as f:  # the log itself is another path: no recursion
            f.write(f"{os.getpid()}\\n")
if _TARGET:
    sys.addaudithook(_hook)
"""


def test_workers_on_postgres_load_the_checkpoint_once_each(trained: Path, pg_server: PgServer,  # noqa: F811
                                                           tmp_path: Path) -> None:
    import sqlalchemy as sa

    url = pg_server.create_database("edgenas_supernet")
    cfg = tmp_path / "search.yaml"
    cfg.write_text(config(ckpt=str(trained / "sn"), trials=8))
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(AUDIT)
    log = tmp_path / "opens.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p),
           "AUDIT_OPEN_TARGET": str((trained / "sn" / "checkpoint.pt").resolve()), "AUDIT_OPEN_LOG": str(log)}
    r = subprocess.run([EDGENAS, "search", str(cfg), "--storage", url, "--study", "sn", "--create-only"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert not log.exists()  # setting up checks the folder without loading the weights
    workers = [subprocess.Popen([EDGENAS, "worker", "--storage", url, "--study", "sn", "--no-progress"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
               for _ in range(2)]
    try:
        outs = [w.communicate(timeout=300)[0] for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    assert all(w.returncode == 0 for w in workers), outs
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as c:
        evals = c.execute(sa.text("SELECT worker FROM edgenas_evaluations WHERE evaluator LIKE 'supernet:%' "
                                  "AND finished IS NOT NULL")).all()
        states = c.execute(sa.text("SELECT t.state FROM trials t JOIN studies s ON s.study_id = t.study_id "
                                   "WHERE s.study_name = 'sn'")).all()
    engine.dispose()
    assert Counter(str(s) for (s,) in states)["COMPLETE"] == 8
    per_worker = Counter(int(w.rsplit(":", 1)[1]) for (w,) in evals)
    opens = Counter(int(x) for x in log.read_text().split())
    assert sum(per_worker.values()) >= 3 and max(per_worker.values()) >= 2  # a worker scored several
    assert set(opens) == set(per_worker)  # only workers that scored loaded it ...
    assert set(opens.values()) == {1}  # ... and each exactly once
