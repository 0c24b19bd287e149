"""What the search tests share: the edgenas command, the tiny 16-network space they search, and the trials of
an Optuna study read straight from its SQLite file (not through edgenas or Optuna)."""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

EDGENAS = str(Path(sys.executable).parent / "edgenas")


def tiny_space(name: str, hardware: str) -> str:
    """4 backbones x 4 head blocks of the seed's flow network at 64x96 (16 networks), on one profile spec."""
    return f"""\
extends: flow_head_upsample
name: {name}
resolutions: [64x96]
choices:
  backbone: [shufflenet, mbconv_e4, mbconv_e6, resnet]
  head1_block: [conv3x3, dsconv3x3, mbconv_e4, mbconv_e6]
hardware: ["{hardware}"]
"""


def trials_of(db: Path, study: str) -> list[dict]:
    """Every trial of `study` in number order: number, state, params (as stored: a categorical's choice index)
    and user attributes."""
    con = sqlite3.connect(db)
    try:
        sid = con.execute("SELECT study_id FROM studies WHERE study_name = ?", (study,)).fetchone()[0]
        rows = con.execute("SELECT trial_id, number, state FROM trials WHERE study_id = ? ORDER BY number",
                           (sid,)).fetchall()
        out = []
        for tid, number, state in rows:
            params = dict(con.execute("SELECT param_name, param_value FROM trial_params WHERE trial_id = ? "
                                      "ORDER BY param_id", (tid,)).fetchall())
            attrs = {k: json.loads(v) for k, v in con.execute(
                "SELECT key, value_json FROM trial_user_attributes WHERE trial_id = ?", (tid,)).fetchall()}
            out.append({"number": number, "state": state, "params": params, "attrs": attrs})
        return out
    finally:
        con.close()
