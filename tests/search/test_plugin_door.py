"""Evaluators come in through one plug-in door: `type: MODULE:FUNCTION` (this suite's fakes use it), with
one-line errors for a module that does not import, a missing function, or an unknown type name."""

from __future__ import annotations

from pathlib import Path

import pytest
from plugin_evaluators import FAKE
from search_helpers import tiny_space

from edgenas.errors import ConfigError
from edgenas.hardware.profile import load_profile
from edgenas.search.evaluators import EvalContext, build_stages
from edgenas.space.space import load_space


@pytest.fixture
def ctx(tmp_path: Path) -> EvalContext:
    cfg = tmp_path / "space.yaml"
    cfg.write_text(tiny_space("plugins", "ethos-u55-256"))
    space = load_space(str(cfg))
    return EvalContext(space, space.resolutions[0], load_profile("ethos-u55-256"))


def test_a_plugin_factory_is_an_evaluator(ctx: EvalContext) -> None:
    (stage,) = build_stages([{"type": FAKE, "name": "mine", "metrics": ["acc"]}], ctx, source="cfg.yaml")
    assert stage.name == "mine" and stage.metrics == ("acc",)
    g = next(ctx.space.enumerate())
    assert set(stage.evaluator.evaluate(g)) == {"acc"}


@pytest.mark.parametrize(("spec", "message"), [
    ({"type": "no_such_module_xyz:make"}, "cannot import plug-in module 'no_such_module_xyz'"),
    ({"type": "plugin_evaluators:nothing_here"}, "has no 'nothing_here'"),
    ({"type": "nosuchtype"},
     "unknown evaluator type 'nosuchtype'; available: analytic, compiler, proxy, supernet, table, train"),
    ({"type": "plugin_evaluators:FAKE"}, "is not a function"),
])
def test_bad_plugins_are_one_line_errors(ctx: EvalContext, spec: dict, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        build_stages([spec], ctx, source="cfg.yaml")
    text = str(e.value)
    assert message in text and "\n" not in text and text.startswith("cfg.yaml: search.evaluators[0].type")
