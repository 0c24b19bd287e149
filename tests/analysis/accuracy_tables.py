"""Planted sweep and trained results for the accuracy analysis and its report (shared by tests/analysis and
tests/report): every verdict is known in advance (see test_analysis_accuracy.py)."""

from __future__ import annotations

from typing import Any

from analysis_tables import HW, RESOLUTIONS, profile, row, table

from edgenas.analysis import StudySettings, analyse

CHOICES = ("head", "kernel", "up")
KEY = RESOLUTIONS[1]
BASE = {"head": "h3", "kernel": "7", "up": "bl"}
# design -> FPS at the key resolution (other resolutions scale it) and whether it fits the 2 MiB device
SWEEP = {
    ("h3", "7", "bl"): (100.0, True),  # the baseline
    ("hds", "7", "bl"): (110.0, True),
    ("h5", "7", "bl"): (70.0, True),
    ("hbig", "7", "bl"): (60.0, True),
    ("h3", "3", "bl"): (130.0, True),
    ("h3", "5", "bl"): (115.0, True),
    ("h3", "7", "hpc"): (60.0, False),  # the half-pixel form: slower and over the device's SRAM
    ("hds", "3", "bl"): (140.0, True),  # swept, never trained
}
# design -> [(seed, epe at the training resolution, epe at the deployment resolution)]
TRAINED = {
    ("h3", "7", "bl"): [(0, 1.00, 2.00), (1, 1.02, 2.03)],  # spreads 0.02 / 0.03: the noise
    ("h3", "3", "bl"): [(0, 1.10, 2.01), (1, 1.11, 2.02)],  # 7x7 better by 0.095 > 0.02 at train res
    ("h3", "5", "bl"): [(0, 0.99, 2.02), (1, 1.00, 2.04)],  # 7x7 NOT better than 5x5 (0.015 < 0.02)
    ("hds", "7", "bl"): [(0, 1.005, 2.00)],  # faster, as accurate: a free saving
    ("h5", "7", "bl"): [(0, 0.90, 1.90)],  # slower, more accurate by 0.11 / 0.115: worth its cycles
    ("hbig", "7", "bl"): [(0, 1.03, 2.02)],  # slower, no gain: not worth its cycles
    ("h3", "7", "hpc"): [(0, 1.00, 1.99)],  # slower, no gain beyond noise, does not fit
}


def sweep() -> Any:
    rows = []
    for (h, k, u), (fps, fit) in SWEEP.items():
        for i, res in enumerate(RESOLUTIONS):
            r = row({"head": h, "kernel": k, "up": u}, res, fps=fps * 2 / (1 + i), sram=1000.0 if fit else 3000.0)
            r["over_sram"] = not fit and res == KEY
            rows.append(r)
    return table(rows, CHOICES)


def acc_rows(trained: dict = TRAINED, **extra: Any) -> list[dict[str, Any]]:
    out = []
    for (h, k, u), runs in trained.items():
        for seed, tr, dp in runs:
            out.append({"head": h, "kernel": k, "up": u, "arch_id": f"{h}-{k}-{u}", "seed": str(seed),
                        "status": "done", "metric": "epe", "higher_is_better": "false", "epe_train": str(tr),
                        "epe_deploy": str(dp), "fl_all_train": "1.5", "fl_all_deploy": "3.0",
                        "zero_epe_train": "1.2", "zero_epe_deploy": "2.05",  # an all-zero output's EPE
                        "train_resolution": "48x64", "deploy_resolution": KEY, "epochs": "6", "train_samples": "640",
                        "val_samples": "64", "batch_size": "16", "seconds": "100", **extra})
    return out


def full_study(rows: list[dict[str, Any]] | None = None, **settings: Any) -> Any:
    """The whole Study of the planted sweep with the planted (or given) trained results."""
    return analyse(sweep(), None, StudySettings(key_resolution=KEY, baseline=BASE, **settings),
                   profiles={HW: profile(sram_kib=2048)}, accuracy=acc_rows() if rows is None else rows)
