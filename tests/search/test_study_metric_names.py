"""A study names its values after the objectives, so tools that read it elsewhere (optuna-dashboard, Optuna's
plots and logs) label them `fps`, `sram_kib` instead of `0`, `1`; a study made before it did gets its
names when it is resumed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from search_helpers import tiny_space

from edgenas.search.storage import open_storage
from edgenas.search.study import create_or_load_study, prepare_from_file, study_metric_names
from edgenas.search.worker import run_trials

METRIC_NAMES_KEY = "study:metric_names"  # where Optuna keeps them: a study system attribute


def _setup(tmp_path: Path, search: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(tiny_space("names_tiny", "ethos-u55-256") + search)
    return prepare_from_file(cfg, cache_path=str(tmp_path / "cache.sqlite"))


def _stored_names(db: Path, study: str) -> Any:
    """The names as they lie in the SQLite file, read without Optuna."""
    con = sqlite3.connect(db)
    try:
        row = con.execute("SELECT a.value_json FROM study_system_attributes a JOIN studies s USING (study_id) "
                          "WHERE s.study_name = ? AND a.key = ?", (study, METRIC_NAMES_KEY)).fetchone()
    finally:
        con.close()
    return None if row is None else json.loads(row[0])


TWO = """\
search:
  objectives:
    - {metric: score, direction: max}
    - {metric: sram_kib, direction: min}
  evaluators: [analytic, {type: "plugin_evaluators:fake", name: test, cost: cheap}]
  strategy: random
  trials: 3
"""


def test_a_new_study_names_its_objectives_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    setup = _setup(tmp_path, TWO, monkeypatch)
    db = tmp_path / "study.db"
    storage = open_storage(str(db))
    create_or_load_study(setup, storage, "s", trials=3)
    run_trials(setup, "s", storage, target=3, seed=0)
    assert _stored_names(db, "s") == ["score", "sram_kib"]
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{db}")
    assert study.metric_names == ["score", "sram_kib"]


def test_an_older_study_without_names_gets_them_on_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    setup = _setup(tmp_path, TWO, monkeypatch)
    db = tmp_path / "study.db"
    create_or_load_study(setup, open_storage(str(db)), "old", trials=1)

    def forget() -> None:  # as an older edgenas left it
        con = sqlite3.connect(db)
        con.execute("DELETE FROM study_system_attributes WHERE key = ?", (METRIC_NAMES_KEY,))
        con.commit()
        con.close()
        assert _stored_names(db, "old") is None

    forget()
    study = create_or_load_study(setup, open_storage(str(db)), "old", trials=2)  # `edgenas search` resumes it
    assert study.metric_names == ["score", "sram_kib"]
    assert _stored_names(db, "old") == ["score", "sram_kib"]
    forget()
    run_trials(setup, "old", open_storage(str(db)), target=2, seed=0)  # `edgenas worker` resumes it
    assert _stored_names(db, "old") == ["score", "sram_kib"]


def test_a_scalarised_strategy_names_its_one_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    setup = _setup(tmp_path, TWO.replace("strategy: random", "strategy: mnas\n  strategy_options: {target: 500}"),
                   monkeypatch)
    assert study_metric_names(setup) == ["mnas_reward"]
    db = tmp_path / "study.db"
    study = create_or_load_study(setup, open_storage(str(db)), "m", trials=1)
    assert study.metric_names == ["mnas_reward"]


def test_optuna_dashboard_labels_the_axes_with_the_metric_names(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """optuna-dashboard's own API (its WSGI app, called in process: no server, no port) reads the names back."""
    pytest.importorskip("optuna_dashboard")
    from wsgiref.util import setup_testing_defaults

    from optuna_dashboard import wsgi

    setup = _setup(tmp_path, TWO, monkeypatch)
    db = tmp_path / "study.db"
    storage = open_storage(str(db))
    create_or_load_study(setup, storage, "dash", trials=2)
    run_trials(setup, "dash", storage, target=2, seed=1)

    app = wsgi(f"sqlite:///{db}")

    def get(path: str) -> Any:
        environ: dict[str, Any] = {"PATH_INFO": path, "QUERY_STRING": "after=0"}
        setup_testing_defaults(environ)
        status: list[str] = []
        body = b"".join(app(environ, lambda s, h, *a: status.append(s)))
        assert status[0].startswith("200"), (status, body[:300])
        return json.loads(body)

    (summary,) = get("/api/studies")["study_summaries"]
    assert summary["study_name"] == "dash"
    detail = get(f"/api/studies/{summary['study_id']}")
    assert detail["objective_names"] == ["score", "sram_kib"]
    assert detail["directions"] == ["maximize", "minimize"]
    assert len(detail["trials"]) == 2
