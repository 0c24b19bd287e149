"""Pareto tools checked against brute force written plainly here, on point sets full of ties and duplicates."""

from __future__ import annotations

import csv
import io
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgenas.errors import ConfigError
from edgenas.search.pareto import (
    crowding_distance,
    hv_ratio,
    hypervolume,
    nondominated_mask,
    nondominated_sort,
)
from edgenas.search.pareto_csv import pareto_rows, write_pareto_csv

ROOT = Path(__file__).resolve().parents[2]
# The benchmark tables live in shared/ beside the repository (../shared), or inside it on some checkouts.
NB201 = next((p for p in (ROOT.parent / "shared", ROOT / "shared") if (p / "benchmarks" / "nb201_pi5.csv").exists()),
             ROOT.parent / "shared") / "benchmarks" / "nb201_pi5.csv"


# ---------------------------------------------------------------- brute force


def dominates(a, b, directions) -> bool:
    """a dominates b: at least as good in every objective and strictly better in one."""
    no_worse = all((x >= y) if d == "max" else (x <= y) for x, y, d in zip(a, b, directions))
    better = any((x > y) if d == "max" else (x < y) for x, y, d in zip(a, b, directions))
    return no_worse and better


def brute_nondominated(points, directions) -> list[bool]:
    pts = [tuple(p) for p in points]
    return [not any(dominates(q, p, directions) for q in pts) for p in pts]


def brute_fronts(points, directions) -> list[int]:
    """Peel off the non-dominated set again and again."""
    pts = [tuple(p) for p in points]
    rank = [-1] * len(pts)
    remaining = list(range(len(pts)))
    front = 0
    while remaining:
        layer = [i for i in remaining if not any(dominates(pts[j], pts[i], directions) for j in remaining)]
        for i in layer:
            rank[i] = front
        remaining = [i for i in remaining if i not in layer]
        front += 1
    return rank


def brute_crowding(points) -> list[float]:
    n = len(points)
    if n <= 2:
        return [float("inf")] * n
    dist = [0.0] * n
    for j in range(len(points[0])):
        order = sorted(range(n), key=lambda i: (points[i][j], i))
        lo, hi = points[order[0]][j], points[order[-1]][j]
        if hi == lo:
            continue
        dist[order[0]] = float("inf")
        dist[order[-1]] = float("inf")
        for k in range(1, n - 1):
            dist[order[k]] += (points[order[k + 1]][j] - points[order[k - 1]][j]) / (hi - lo)
    return dist


def to_min(points, reference, directions):
    """Negate maximised objectives so that everything is minimised."""
    sign = np.array([-1.0 if d == "max" else 1.0 for d in directions])
    return np.asarray(points, dtype=float).reshape(-1, len(directions)) * sign, np.asarray(reference) * sign


def brute_hv_2d(points, directions, reference) -> float:
    """Sum of rectangles: sweep the points by the first objective, keep the best second objective so far."""
    pts, ref = to_min(points, reference, directions)
    pts = sorted(tuple(p) for p in pts if p[0] < ref[0] and p[1] < ref[1])
    total, best_y = 0.0, ref[1]
    for k, (x, y) in enumerate(pts):
        best_y = min(best_y, y)
        next_x = pts[k + 1][0] if k + 1 < len(pts) else ref[0]
        total += (next_x - x) * (ref[1] - best_y)
    return total


def brute_hv_grid(points, directions, reference) -> int:
    """Count unit cells (integer points and reference) covered by the box of some point and the reference."""
    pts, ref = to_min(points, reference, directions)
    if len(pts) == 0:
        return 0
    lo = np.minimum(pts.min(axis=0), ref).astype(int)
    count = 0
    for cell in itertools.product(*(range(a, int(r)) for a, r in zip(lo, ref))):
        c = np.array(cell)
        if np.any(np.all(pts <= c, axis=1)):  # a point better than the cell's lower corner covers it
            count += 1
    return count


def random_case(rng: np.random.Generator, n_max: int = 40, m_range=(1, 5), values: int = 4):
    m = int(rng.integers(*m_range))
    n = int(rng.integers(0, n_max))
    points = rng.integers(0, values, size=(n, m))
    if n > 3:  # force exact duplicates as well as the ties the small value range gives
        points[rng.integers(0, n, size=n // 4)] = points[rng.integers(0, n, size=n // 4)]
    directions = [str(d) for d in rng.choice(["min", "max"], size=m)]
    return points, directions


# ---------------------------------------------------------------- non-dominated set and sorting


def test_nondominated_mask_matches_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(300):
        points, directions = random_case(rng)
        expected = brute_nondominated(points, directions)
        got = nondominated_mask(points, directions)
        assert got.dtype == bool
        assert got.tolist() == expected, (points.tolist(), directions)


def test_nondominated_mask_keeps_every_copy_of_a_tie_unless_asked():
    points = [[1, 5], [1, 5], [2, 4], [1, 5], [3, 3], [2, 4], [3, 5]]
    assert nondominated_mask(points, ["min", "min"]).tolist() == [True, True, True, True, True, True, False]
    assert nondominated_mask(points, ["min", "min"], keep_duplicates=False).tolist() == [
        True, False, True, False, True, False, False]
    assert nondominated_mask(points, ["max", "max"]).tolist() == [False, False, False, False, False, False, True]
    assert nondominated_mask(points, ["min", "max"]).tolist() == [True, True, False, True, False, False, False]


def test_nondominated_mask_without_duplicates_keeps_first_copy():
    rng = np.random.default_rng(2)
    for _ in range(200):
        points, directions = random_case(rng)
        front = brute_nondominated(points, directions)
        rows = [tuple(p) for p in points]
        expected = [front[i] and rows[i] not in rows[:i] for i in range(len(rows))]
        assert nondominated_mask(points, directions, keep_duplicates=False).tolist() == expected


def test_nondominated_sort_matches_repeated_peeling():
    rng = np.random.default_rng(3)
    for _ in range(200):
        points, directions = random_case(rng)
        got = nondominated_sort(points, directions)
        assert got.tolist() == brute_fronts(points, directions), (points.tolist(), directions)
        if len(points):
            assert np.array_equal(got == 0, nondominated_mask(points, directions))


def test_empty_and_single_objective():
    assert nondominated_mask(np.zeros((0, 3)), ["min"] * 3).tolist() == []
    assert nondominated_sort([], ["max"]).tolist() == []
    assert nondominated_mask([[3], [1], [1], [2]], ["min"]).tolist() == [False, True, True, False]
    assert nondominated_sort([[3], [1], [1], [2]], ["max"]).tolist() == [0, 2, 2, 1]


# ---------------------------------------------------------------- crowding distance


def test_crowding_distance_by_hand():
    # sorted by f1: (1,9) (2,7) (4,4) (7,1); f1 width 6, f2 width 8
    points = [[4, 4], [1, 9], [7, 1], [2, 7]]
    got = crowding_distance(points, ["min", "min"])
    assert got[1] == np.inf and got[2] == np.inf
    assert got[3] == pytest.approx((4 - 1) / 6 + (9 - 4) / 8)
    assert got[0] == pytest.approx((7 - 2) / 6 + (7 - 1) / 8)


def test_crowding_distance_matches_plain_implementation():
    rng = np.random.default_rng(4)
    for _ in range(300):
        points, directions = random_case(rng, n_max=12)
        got = crowding_distance(points, directions)
        expected = brute_crowding(points.tolist())
        assert got.tolist() == pytest.approx(expected), (points.tolist(), directions)
    floats = rng.random((9, 3))
    assert crowding_distance(floats, ["max", "min", "max"]).tolist() == pytest.approx(brute_crowding(floats.tolist()))


def test_crowding_distance_small_and_flat_sets():
    assert crowding_distance(np.zeros((0, 2)), ["min", "max"]).tolist() == []
    assert crowding_distance([[1, 2]], ["min", "max"]).tolist() == [np.inf]
    assert crowding_distance([[1, 2], [1, 2]], ["min", "max"]).tolist() == [np.inf, np.inf]
    assert crowding_distance([[1, 2]] * 4, ["min", "max"]).tolist() == [0, 0, 0, 0]


# ---------------------------------------------------------------- hypervolume


def test_hypervolume_2d_matches_sum_of_rectangles():
    rng = np.random.default_rng(5)
    for _ in range(300):
        n = int(rng.integers(0, 25))
        directions = [str(d) for d in rng.choice(["min", "max"], size=2)]
        points = rng.integers(0, 8, size=(n, 2)).astype(float)
        if rng.random() < 0.5:
            points = points + rng.random((n, 2))  # real-valued too
        reference = rng.integers(2, 7, size=2).astype(float)  # inside the cloud: many points outside the box
        assert hypervolume(points, directions, reference) == pytest.approx(
            brute_hv_2d(points, directions, reference), abs=1e-9), (points.tolist(), directions, reference)


def test_hypervolume_matches_grid_counting_in_2_to_4_objectives():
    rng = np.random.default_rng(6)
    for _ in range(150):
        points, directions = random_case(rng, n_max=15, m_range=(2, 5), values=6)
        reference = rng.integers(1, 6, size=len(directions))
        assert hypervolume(points, directions, reference) == brute_hv_grid(points, directions, reference), (
            points.tolist(), directions, reference.tolist())


def test_hypervolume_ignores_points_on_or_outside_the_reference_box():
    # maximise accuracy (floor 90), minimise latency (limit 10 ms)
    directions, reference = ["max", "min"], [90, 10]
    assert hypervolume([[95, 5]], directions, reference) == 25
    assert hypervolume([[95, 5], [99, 12], [89, 1], [90, 2], [97, 10]], directions, reference) == 25
    assert hypervolume([[99, 12], [89, 1]], directions, reference) == 0.0
    assert hypervolume(np.zeros((0, 2)), directions, reference) == 0.0
    assert hypervolume([[95, 5], [95, 5], [93, 7]], directions, reference) == 25  # duplicates, dominated


def test_hv_ratio():
    directions, reference = ["max", "min"], [0, 10]
    front = [[5, 5], [8, 8], [2, 2]]
    assert hv_ratio(front, front, directions, reference) == 1.0
    # found: one front point plus junk that is dominated or outside the box
    ratio = hv_ratio([[5, 5], [4, 6], [-1, 0], [9, 11]], front, directions, reference)
    assert ratio == pytest.approx(25 / hypervolume(front, directions, reference))
    with pytest.raises(ValueError, match="zero hypervolume"):
        hv_ratio(front, [[-1, 0]], directions, reference)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: nondominated_mask([[1, 2]], ["min", "up"]), "'min' or 'max'"),
        (lambda: nondominated_mask([[1, 2]], []), "at least one"),
        (lambda: nondominated_mask([[1, 2, 3]], ["min", "max"]), "3 objectives but 2"),
        (lambda: nondominated_sort([1, 2], ["min", "max"]), "2-D"),
        (lambda: crowding_distance([[1, np.nan]], ["min", "max"]), "NaN"),
        (lambda: hypervolume([[1, 2]], ["min", "max"], [1, 2, 3]), "one value per objective"),
        (lambda: hypervolume([[1, 2]], ["min", "max"], [1, np.inf]), "reference"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_directions_as_one_string_is_a_type_error():
    with pytest.raises(TypeError, match="sequence"):
        nondominated_mask([[1, 2, 3]], "max")  # three letters, not three objectives


# ---------------------------------------------------------------- CSV and the `edgenas pareto` command

CLI = "import sys; sys.argv[0] = 'edgenas'; from edgenas.cli import main; main()"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The real `edgenas` main, its error handling included."""
    return subprocess.run([sys.executable, "-c", CLI, "pareto", *args], capture_output=True, text=True, timeout=60,
                          check=False)


SMALL = """\
name,acc,lat,note
a,90,5,dup
b,90,5,dup
c,91,7,
d,89,5,dominated by a
e,,1,no acc
f,93,x9,bad latency
g,91,7,"copy of c, quoted"
h,80,2,
i,95,20,
j,94,20,dominated by i
"""


@pytest.fixture()
def small_csv(tmp_path: Path) -> Path:
    path = tmp_path / "small.csv"
    path.write_text(SMALL)
    return path


def test_pareto_rows_keeps_all_ties_in_file_order(small_csv: Path):
    err = io.StringIO()
    header, rows = pareto_rows(small_csv, ["acc"], ["lat"], stderr=err)
    assert header == ["name", "acc", "lat", "note"]
    assert [r[0] for r in rows] == ["a", "b", "c", "g", "h", "i"]
    assert rows[3] == ["g", "91", "7", "copy of c, quoted"]
    assert err.getvalue().count("\n") == 1 and "skipped 2 of 10 rows" in err.getvalue()
    out = io.StringIO()
    write_pareto_csv(header, rows, out)
    assert out.getvalue().splitlines()[0] == "name,acc,lat,note"
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [header, *rows]


def test_pareto_command_on_small_csv(small_csv: Path):
    result = run_cli(str(small_csv), "--max", "acc", "--min", "lat")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "name,acc,lat,note", "a,90,5,dup", "b,90,5,dup", "c,91,7,", 'g,91,7,"copy of c, quoted"', "h,80,2,",
        "i,95,20,"]
    assert result.stderr.strip().splitlines() == [
        "edgenas: note: skipped 2 of 10 rows with an empty or non-numeric value in acc, lat"]


def brute_front_vectorised(points: np.ndarray, directions: list[str]) -> np.ndarray:
    """All-pairs dominance with numpy (a chunk of rows against all rows, one objective at a time)."""
    pts = np.where(np.array(directions) == "max", -points, points)  # minimise everything
    keep = np.ones(len(pts), dtype=bool)
    step = 2048
    for start in range(0, len(pts), step):
        block = pts[start:start + step]
        no_worse = np.ones((len(block), len(pts)), dtype=bool)  # [i, j]: row j is no worse than row i
        equal = np.ones_like(no_worse)
        for k in range(pts.shape[1]):
            no_worse &= pts[None, :, k] <= block[:, None, k]
            equal &= pts[None, :, k] == block[:, None, k]
        keep[start:start + step] = ~(no_worse & ~equal).any(axis=1)
    return keep


@pytest.mark.skipif(not NB201.exists(), reason="shared/benchmarks/nb201_pi5.csv not present")
def test_pareto_on_nb201_matches_brute_force():
    with open(NB201, newline="") as f:
        records = list(csv.reader(f))
    header, data = records[0], records[1:]
    acc, lat = header.index("cifar10_acc"), header.index("pi5_litert_ms")
    points = np.array([[float(r[acc]), float(r[lat])] for r in data])
    expected = [r for r, k in zip(data, brute_front_vectorised(points, ["max", "min"])) if k]
    assert len(data) == 15625
    got_header, rows = pareto_rows(NB201, ["cifar10_acc"], ["pi5_litert_ms"])
    assert got_header == header and rows == expected
    assert len({(r[acc], r[lat]) for r in rows}) < len(rows)  # the real table has exact ties: all kept

    # three objectives, mixed directions
    cols = [header.index(c) for c in ("cifar100_acc", "pi5_onnx_ms", "imagenet16_acc")]
    points3 = np.array([[float(r[c]) for c in cols] for r in data])
    expected3 = [r for r, k in zip(data, brute_front_vectorised(points3, ["max", "min", "max"])) if k]
    assert pareto_rows(NB201, ["cifar100_acc", "imagenet16_acc"], ["pi5_onnx_ms"])[1] == expected3

    result = run_cli(str(NB201), "--max", "cifar10_acc", "--min", "pi5_litert_ms")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert list(csv.reader(io.StringIO(result.stdout))) == [header, *expected]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["missing.csv", "--max", "acc"], ["missing.csv", "no such file"]),
        (["{csv}", "--max", "accuracy", "--min", "lat"], ["small.csv", "'accuracy'", "name, acc, lat, note"]),
        (["{csv}"], ["at least one objective"]),
        (["{csv}", "--max", "acc", "--max", "acc"], ["'acc' given twice"]),
        (["{csv}", "--max", "lat", "--min", "lat"], ["'lat' given twice"]),
        (["{dir}", "--max", "acc"], ["directory"]),
    ],
)
def test_pareto_command_errors(small_csv: Path, tmp_path: Path, args: list[str], needles: list[str]):
    args = [a.format(csv=small_csv, dir=tmp_path) for a in args]
    if args[0] == "missing.csv":
        args[0] = str(tmp_path / "missing.csv")
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgenas: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_pareto_rows_errors_are_config_errors(tmp_path: Path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ConfigError, match="empty file"):
        pareto_rows(empty, ["a"], [])
    twice = tmp_path / "twice.csv"
    twice.write_text("a,a,b\n1,2,3\n")
    with pytest.raises(ConfigError, match="appears 2 times"):
        pareto_rows(twice, ["a"], [])
    only_bad = tmp_path / "bad.csv"
    only_bad.write_text("a,b\nx,1\n,2\nnan,3\ninf,4\n")
    err = io.StringIO()
    assert pareto_rows(only_bad, ["a"], ["b"], stderr=err) == (["a", "b"], [])
    assert "skipped 4 of 4 rows" in err.getvalue()
