"""Write the committed genotype lists of the accuracy benchmarks (bench-proxies, bench-supernet):

- flow.txt: benchmarks/flow_space.yaml's seed networks first (the seed study's 28: 4 backbones x 7 head
  blocks, Head2 = Head1, predict kernel 7, the default widths head1 32 / head2 16), then FLOW_RANDOM others
  drawn uniformly without replacement from the rest of the space's 5,292 networks (widths as choices since
  2026-11-30: the list was redrawn then, before any supernet figure existed, with 2 of bench-proxies' flow
  runs finished);
- flow_random.txt: the FLOW_RANDOM drawn ones alone, in flow.txt's order (bench-proxies `--first`: the flow
  reference trains them before the seed networks, so a partial reference is a random sample of the space);
- flow_seed.txt: the seed networks alone, in flow.txt's order (the `full` script's table on the seed study's
  own candidates);
- digits.txt: DIGITS_RANDOM networks drawn uniformly without replacement from benchmarks/digits_space.yaml.

Drawn by a seeded generator, never picked by hand, and committed before any supernet figure is seen.
Re-running this script rewrites the same files (tested: the committed lists are what it writes).
Usage: python benchmarks/genotypes/make_lists.py [--check]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from edgenas.space.space import SearchSpace, load_space

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
SEED = 9  # issue 9
FLOW_RANDOM = 40
DIGITS_RANDOM = 36


def flow_lists(space: SearchSpace) -> tuple[list[str], list[str]]:
    """The seed networks and the randomly drawn ones."""
    seed_nets = [space.genotype({**space.default.as_dict(), "backbone": b, "head1_block": h, "head2_block": h,
                                 "predict_kernel": 7})
                 for b in space.choices["backbone"] for h in space.choices["head1_block"]]
    taken = {g.arch_id for g in seed_nets}
    rest = [g for g in space.enumerate() if g.arch_id not in taken]
    drawn = random.Random(SEED).sample(rest, FLOW_RANDOM)
    return [str(g) for g in seed_nets], [str(g) for g in drawn]


def digits_list(space: SearchSpace) -> list[str]:
    return [str(g) for g in random.Random(SEED).sample(list(space.enumerate()), DIGITS_RANDOM)]


def texts() -> dict[Path, str]:
    seed_nets, drawn = flow_lists(load_space(BENCH / "flow_space.yaml"))
    digits = digits_list(load_space(BENCH / "digits_space.yaml"))
    head = "# Written by benchmarks/genotypes/make_lists.py (seed {seed}); one genotype per line.\n"
    n_flow = load_space(BENCH / "flow_space.yaml").size()
    return {
        HERE / "flow.txt": head.format(seed=SEED) + f"# 28 seed networks (default widths), then {FLOW_RANDOM} drawn "
        f"at random from the other {n_flow - 28:,}\n# drawn 2026-11-30, before any supernet figure existed\n"
        + "\n".join(seed_nets + drawn) + "\n",
        HERE / "flow_random.txt": head.format(seed=SEED) + f"# the {FLOW_RANDOM} of flow.txt drawn at random from the "
        f"{n_flow - 28:,} networks other than the seed's\n" + "\n".join(drawn) + "\n",
        HERE / "flow_seed.txt": head.format(seed=SEED) + "# the 28 seed networks of flow.txt: the seed study's "
        "4 backbones x 7 head blocks,\n# Head2 = Head1, predict kernel 7, default widths\n" + "\n".join(seed_nets) + "\n",
        HERE / "digits.txt": head.format(seed=SEED) + f"# {DIGITS_RANDOM} drawn at random from the 48\n"
        + "\n".join(digits) + "\n",
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check", action="store_true", help="only check that the committed lists are up to date")
    a = ap.parse_args()
    stale = []
    for path, text in texts().items():
        if a.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)} (run python benchmarks/genotypes/make_lists.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
