"""The accuracy section's analysis on planted tables: a hand-made sweep (FPS, fit) and hand-made trained results
(EPE per seed), so every verdict is known in advance: the seed noise is the largest seed-to-seed spread, a
slower value is worth its cycles only when it is more accurate by more than that, the 7x7 predict conv beats
3x3 beyond the noise but NOT 5x5, a design that does not fit is on no front, one seed means no verdict."""

from __future__ import annotations

from typing import Any

import pytest
from accuracy_tables import BASE, KEY, TRAINED, acc_rows, full_study, sweep
from analysis_tables import HW

from edgenas.analysis import StudySettings, analyse, pareto_front
from edgenas.analysis.accuracy import compare
from edgenas.analysis.designs import Design
from edgenas.errors import ConfigError


def study(rows: list[dict[str, Any]] | None = None, **settings: Any) -> Any:
    s = full_study(rows, **settings)
    assert s.accuracy is not None
    return s.accuracy


def design(a: Any, h: str, k: str, u: str) -> Any:
    (d,) = [t for t in a.designs if t.design.as_dict() == {"head": h, "kernel": k, "up": u}]
    return d


def factor(a: Any, choice: str) -> Any:
    (f,) = [f for f in a.factors if f.choice == choice]
    return f


def entry(f: Any, value: str) -> Any:
    (e,) = [e for e in f.entries if e.value == value]
    return e


def test_budget_means_spreads_and_costs() -> None:
    a = study()
    b = a.budget
    assert (b.metric, b.higher_is_better, b.train_resolutions, b.deploy_resolution) == ("epe", False, ("48x64",), KEY)
    assert (b.epochs, b.train_samples, b.val_samples, b.batch_sizes, b.seeds) == ((6,), (640,), (64,), (16,), (0, 1))
    assert b.runs == 10 and b.seconds == pytest.approx(1000.0)
    assert a.fps_resolution == KEY and a.hardware == HW and a.unmatched == 0
    base = design(a, "h3", "7", "bl")
    assert base.seeds == (0, 1) and base.train == pytest.approx(1.01) and base.deploy == pytest.approx(2.015)
    assert base.spread_train == pytest.approx(0.02) and base.spread_deploy == pytest.approx(0.03)
    assert base.others == (("fl_all", 1.5, 3.0),)
    assert base.fps == pytest.approx(100.0) and base.fits
    hpc = design(a, "h3", "7", "hpc")
    assert hpc.fps == pytest.approx(60.0) and not hpc.fits and hpc.spread_train is None
    assert [t.train for t in a.designs] == sorted(t.train for t in a.designs)  # most accurate first


def test_how_many_designs_beat_the_all_zero_output() -> None:
    a = study()
    assert a.budget.zero_train == pytest.approx(1.2) and a.budget.zero_deploy == pytest.approx(2.05)
    assert a.beat_zero_train == 7  # every mean is below 1.2 - 0.02
    assert a.beat_zero_deploy == 5  # below 2.05 - 0.03 = 2.02: not h3+5 (2.03) nor hbig (2.02, not beyond)
    nothing = study(acc_rows(zero_epe_deploy="1.5"))
    assert nothing.beat_zero_deploy == 0 and nothing.beat_zero_train == 7


def test_noise_is_the_largest_seed_spread() -> None:
    n = study().noise
    assert (n.designs, n.seeds_per_design) == (3, 2)
    assert n.train == pytest.approx(0.02) and n.deploy == pytest.approx(0.03)


def test_front_among_designs_that_fit() -> None:
    a = study()
    names = [d.as_dict()["head"] + d.as_dict()["kernel"] for d in a.front_train]
    assert names == ["h33", "h35", "h57"]  # fastest first; hpc (1.00 at 60 FPS) does not fit, so it is on none
    assert not design(a, "h3", "7", "hpc").front_train and not design(a, "h3", "7", "hpc").front_deploy
    assert design(a, "h5", "7", "bl").front_deploy and design(a, "h3", "3", "bl").front_deploy
    assert not design(a, "h3", "7", "bl").front_train  # the baseline is dominated by h3+5 and hds


def test_predict_kernel_7_beats_3_beyond_noise_but_not_5() -> None:
    f = factor(study(), "kernel")
    assert f.reference == "7" and [e.value for e in f.entries] == ["7", "3", "5"] and f.entries[0].is_reference
    k3, k5 = entry(f, "3"), entry(f, "5")
    assert k3.fps_change == pytest.approx(0.3) and k5.fps_change == pytest.approx(0.15)
    assert k3.train.delta == pytest.approx(0.095) and k3.train.noise == pytest.approx(0.02)
    assert (k3.train.comparison, k3.train.outcome) == ("worse", "cheaper_worse")  # 7x7 wins at 48x64 ...
    assert k3.deploy.comparison == "within_noise"  # ... but not at the deployment resolution
    assert k5.train.delta == pytest.approx(-0.015)
    assert (k5.train.comparison, k5.train.outcome) == ("within_noise", "cheaper_no_loss")  # 7x7 NOT better
    assert (k5.deploy.comparison, k5.deploy.outcome) == ("within_noise", "cheaper_no_loss")


def test_heads_worth_their_cycles_and_the_recommended_set() -> None:
    f = factor(study(recommended={"head": ("h3", "hds", "h5")}), "head")
    assert [e.value for e in f.entries] == ["h3", "hds", "h5", "hbig"] and f.recommended == ("h3", "hds", "h5")
    assert entry(f, "hds").train.outcome == "cheaper_no_loss"
    assert entry(f, "h5").train.outcome == entry(f, "h5").deploy.outcome == "costlier_better"
    assert entry(f, "hbig").train.outcome == entry(f, "hbig").deploy.outcome == "costlier_no_gain"
    on = {e.value for e in f.entries if e.on_front_train}
    assert on == {"hds", "h5"}  # h3 is dominated by hds (faster, 1.005 < 1.01); hbig by everything
    assert {e.value for e in f.entries if e.recommended} == {"h3", "hds", "h5"}


def test_recommended_defaults_to_the_reduced_space_and_is_checked() -> None:
    a = study()
    assert a.recommended_source == "study"
    assert study(recommended={"head": ("h3",)}).recommended_source == "config"
    with pytest.raises(ConfigError, match="report.recommended.colour"):
        study(recommended={"colour": ("red",)})
    with pytest.raises(ConfigError, match="'h9' is not a value of head"):
        study(recommended={"head": ("h9",)})


def test_half_pixel_form_not_worth_its_cycles_and_does_not_fit() -> None:
    f = factor(study(), "up")
    hpc = entry(f, "hpc")
    assert hpc.fps_change == pytest.approx(-0.4) and not hpc.trained.fits
    assert hpc.train.outcome == "costlier_no_gain" and hpc.deploy.outcome == "costlier_no_gain"
    assert not hpc.on_front_train and not hpc.on_front_deploy


def test_one_seed_each_means_no_verdict() -> None:
    one = {d: runs[:1] for d, runs in TRAINED.items()}
    a = study(acc_rows(one))
    assert a.noise.train is None and a.noise.deploy is None and a.noise.designs == 0
    for f in a.factors:
        for e in f.entries[1:]:
            assert e.train.outcome == e.deploy.outcome == "noise_unknown" and e.train.delta is not None
    assert a.front_train  # the front is still drawn (it ignores noise, and the report says so)


def test_unfinished_unmatched_and_missing_rows() -> None:
    rows = acc_rows()
    rows.append({**rows[0], "status": "running", "epe_train": "0.1"})  # ignored
    rows.append({**rows[0], "head": "h42", "arch_id": "other"})  # not in the sweep
    a = study(rows)
    assert a.unmatched == 1 and design(a, "h42", "7", "bl").fps is None
    assert design(a, "h3", "7", "bl").train == pytest.approx(1.01)
    only_base = acc_rows({("h3", "7", "bl"): TRAINED[("h3", "7", "bl")]})
    assert study(only_base).factors == ()  # nothing to compare against
    none = analyse(sweep(), None, StudySettings(key_resolution=KEY, baseline=BASE), accuracy=[])
    assert none.accuracy is None


def test_higher_is_better_metric_flips_the_verdicts() -> None:
    rows = acc_rows(metric="top1", higher_is_better="true")
    for r in rows:  # accuracy = 2 - epe: the same ordering, reversed direction
        r["top1_train"], r["top1_deploy"] = str(2 - float(r.pop("epe_train"))), str(3 - float(r.pop("epe_deploy")))
    a = study(rows)
    assert a.budget.metric == "top1" and a.budget.higher_is_better
    f = factor(a, "kernel")
    assert entry(f, "3").train.outcome == "cheaper_worse" and entry(f, "5").train.outcome == "cheaper_no_loss"
    assert entry(factor(a, "head"), "h5").train.outcome == "costlier_better"
    assert a.designs[0].design.as_dict()["head"] == "h5"  # most accurate first


def test_pareto_front_and_compare() -> None:
    d = [Design(str(i), (("x", str(i)),)) for i in range(5)]
    pts = [(d[0], 1.0, 10.0), (d[1], 2.0, 20.0), (d[2], 2.0, 15.0), (d[3], 1.0, 10.0), (d[4], 0.5, 5.0)]
    # d2 is dominated by d1; d0 and d3 tie (neither dominates the other)
    assert pareto_front(pts) == (d[1], d[0], d[3], d[4])
    assert compare(None, 1.0, 0.1, 0.1).outcome == "missing"
    assert compare(1.0, 1.2, None, 0.1).outcome == "missing" and compare(1.0, 1.2, None, 0.1).comparison == "better"
    assert compare(1.0, 1.5, -0.2, 0.5).outcome == "costlier_no_gain"  # exactly the noise: not beyond it
    assert compare(1.0, 1.2, 0.0, 0.05).outcome == "cheaper_no_loss"
