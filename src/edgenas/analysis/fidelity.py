"""How well a cheap accuracy estimate ranks networks like stand-alone training: rank correlations with paired
bootstrap confidence intervals, within-group correlations and the seed-noise ceiling. Pure functions over
arrays (no I/O, no torch); `bench-proxies` (and the supernet benchmark after it) call them.

Orientation. Every array passed in is oriented so that HIGHER = BETTER: a lower-is-better metric (EPE) is
negated by the caller (`oriented`), so a positive tau always means "ranks like the reference".

Statistics (all on ranks, ties averaged):
- Kendall's tau-b and Spearman's rho, point estimates from scipy.stats (`kendalltau`, `spearmanr`).
- Paired bootstrap: `resamples` draws of the genotypes with replacement, the SAME draws for every estimate
  (so the intervals of two estimates are comparable and their difference is meaningful); 95 % percentile
  intervals. scipy needs milliseconds per call, and a table needs ~10^5 of them, so the resamples are
  computed here in vectorised numpy (tau-b from the pair-sign matrices, rho as Pearson on average ranks):
  the same definitions as scipy, checked against it in the tests.
- Within groups (e.g. per backbone, which alone separates much of the flow space and flatters every
  estimate): the correlation inside each group of at least `MIN_GROUP` genotypes, averaged with weights =
  group size over the groups where it is defined (a group whose reference or estimate is constant has none).
- Ceiling (Spearman-Brown). With r_AB the Spearman correlation between two training seeds A and B of the
  same networks (the test-retest reliability of one run), an estimate X correlates with seed A at most
  corr(X, true) * sqrt(r_AB) <= sqrt(r_AB) in expectation (correction for attenuation, X's own noise
  ignored): `ceiling_one_seed` = sqrt(r_AB). The mean of two seeds has reliability 2 r_AB / (1 + r_AB)
  (Spearman-Brown prophecy, k = 2): `reliability_two_seed_mean`; a reference of two seeds would lift the
  ceiling to the square root of that. The formulas are for Pearson correlations; on ranks they are the
  usual approximation.
- Top-k (what a search that keeps an estimate's k best for full training needs): the expected overlap of the
  estimate's top k with the reference's top k, as a fraction of k, and the probability that the reference's
  best genotype is in the estimate's top k. Ties are broken uniformly at random, and the expectation over
  tie-breaks is computed exactly: a genotype strictly inside the top k is in it with probability 1, each
  member of the tie group straddling the boundary with probability (free places) / (group size). A tie-free
  version would reward an estimate that is constant (params, for a space that only changes kernels) with
  whatever order the genotype list happens to have.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import kendalltau, rankdata, spearmanr

MIN_GROUP = 3  # genotypes a group needs for its within-group correlation to count
_CHUNK = 200  # bootstrap resamples computed at once (the pair matrices are chunk x n x n)

__all__ = ["MIN_GROUP", "TOP_K", "bootstrap_indices", "ceiling", "fidelity", "finite_for_ranking", "kendall_tau_b",
           "oriented", "percentile_interval", "rank_correlations", "spearman_rho", "top_k_membership", "top_k_overlap",
           "within_groups"]

TOP_K = 5  # does the estimate's top 5 hold the reference's best?


def oriented(values: Sequence[float] | np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Values turned so that higher = better (a lower-is-better metric such as EPE is negated)."""
    a = np.asarray(values, dtype=float)
    return a if higher_is_better else -a


def finite_for_ranking(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Non-finite scores made rankable: NaN and -inf (a proxy that could not score a network, NASWOT's
    singular kernel) rank below every finite score, +inf above."""
    a = np.asarray(values, dtype=float).copy()
    finite = a[np.isfinite(a)]
    lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
    a[np.isnan(a) | np.isneginf(a)] = lo - 1.0
    a[np.isposinf(a)] = hi + 1.0
    return a


def _stat(value: Any) -> float:
    v = float(value)
    return v if math.isfinite(v) else math.nan


def rank_correlations(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """(Kendall tau-b, Spearman rho) from scipy.stats; NaN when undefined (fewer than 2 points, a constant)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan, math.nan
    return _stat(kendalltau(x, y).statistic), _stat(spearmanr(x, y).statistic)


# ---- vectorised versions for the bootstrap: rows are resamples -------------------------------------------


def _pair_signs(x: np.ndarray) -> np.ndarray:
    """sign(x_i - x_j) of each row over the pairs i < j: [R, n (n - 1) / 2]."""
    i, j = np.triu_indices(x.shape[1], k=1)
    return np.sign(x[:, i] - x[:, j]).astype(np.int8)


def _tau_from_signs(sx: np.ndarray, sy: np.ndarray, pair_mask: np.ndarray | None = None) -> np.ndarray:
    if pair_mask is not None:
        sx = sx * pair_mask
        sy = sy * pair_mask
    s = (sx * sy).sum(axis=1, dtype=np.int64)
    nx = np.count_nonzero(sx, axis=1)  # pairs not tied in x (a pair tied in both counts in neither)
    ny = np.count_nonzero(sy, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((nx > 0) & (ny > 0), s / np.sqrt(nx * ny), np.nan)


def kendall_tau_b(x: np.ndarray, y: np.ndarray, member: np.ndarray | None = None) -> np.ndarray:
    """Tau-b of each row of x and y ([R, n]) over the entries where `member` ([R, n], default all) holds;
    NaN where undefined. Same definition as scipy.stats.kendalltau (variant 'b')."""
    return _tau_from_signs(_pair_signs(x), _pair_signs(y), None if member is None else _pair_members(member))


def _pair_members(member: np.ndarray) -> np.ndarray:
    i, j = np.triu_indices(member.shape[1], k=1)
    return member[:, i] & member[:, j]


def spearman_rho(x: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Spearman rho of each row of x and y ([R, n]) over the entries where `mask` holds (default all): the
    Pearson correlation of average ranks, as scipy.stats.spearmanr; NaN where undefined."""
    if mask is not None:
        x = np.where(mask, x, np.nan)
        y = np.where(mask, y, np.nan)
    rx = rankdata(x, axis=1, nan_policy="omit")
    ry = rankdata(y, axis=1, nan_policy="omit")
    valid = ~np.isnan(rx)
    count = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = np.nansum(rx, axis=1) / count
        my = np.nansum(ry, axis=1) / count
        dx = np.where(valid, rx - mx[:, None], 0.0)
        dy = np.where(valid, ry - my[:, None], 0.0)
        sxy = (dx * dy).sum(axis=1)
        sxx = (dx * dx).sum(axis=1)
        syy = (dy * dy).sum(axis=1)
        return np.where((sxx > 0) & (syy > 0) & (count >= 2), sxy / np.sqrt(sxx * syy), np.nan)


def _within_rows(x: np.ndarray, y: np.ndarray, members: Sequence[np.ndarray], sx: np.ndarray, sy: np.ndarray,
                 pair_members: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Within-group tau and rho of each row (x, y: [R, n]; one [R, n] membership mask per group, with its
    pair mask and the rows' pair signs precomputed), averaged over the defined groups weighted by size."""
    tau_sum = np.zeros(len(x))
    rho_sum = np.zeros(len(x))
    w_tau = np.zeros(len(x))
    w_rho = np.zeros(len(x))
    for member, pairs in zip(members, pair_members, strict=True):
        size = member.sum(axis=1).astype(float)
        tau = _tau_from_signs(sx, sy, pairs)
        rho = spearman_rho(x, y, member)
        ok_t = (size >= MIN_GROUP) & ~np.isnan(tau)
        ok_r = (size >= MIN_GROUP) & ~np.isnan(rho)
        tau_sum += np.where(ok_t, tau * size, 0.0)
        rho_sum += np.where(ok_r, rho * size, 0.0)
        w_tau += np.where(ok_t, size, 0.0)
        w_rho += np.where(ok_r, size, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(w_tau > 0, tau_sum / w_tau, np.nan), np.where(w_rho > 0, rho_sum / w_rho, np.nan))


# ---- what a report uses -------------------------------------------------------------------------------


def within_groups(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray,
                  groups: Sequence[Any]) -> dict[str, Any]:
    """Tau and rho inside each group (scipy), and their averages weighted by group size over the groups of at
    least MIN_GROUP genotypes where they are defined."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    groups = np.asarray(groups, dtype=object)
    per: dict[str, dict[str, Any]] = {}
    acc = {"tau": [0.0, 0], "spearman": [0.0, 0]}
    for label in dict.fromkeys(groups.tolist()):
        idx = groups == label
        n = int(idx.sum())
        tau, rho = rank_correlations(x[idx], y[idx]) if n >= MIN_GROUP else (math.nan, math.nan)
        per[str(label)] = {"n": n, "tau": tau, "spearman": rho}
        for key, v in (("tau", tau), ("spearman", rho)):
            if not math.isnan(v):
                acc[key][0] += v * n
                acc[key][1] += n
    return {"tau": acc["tau"][0] / acc["tau"][1] if acc["tau"][1] else math.nan,
            "spearman": acc["spearman"][0] / acc["spearman"][1] if acc["spearman"][1] else math.nan,
            "groups": per}


def top_k_membership(values: Sequence[float] | np.ndarray, k: int) -> np.ndarray:
    """P(genotype i is among the k highest values) under uniformly random tie-breaking (exact)."""
    a = np.asarray(values, dtype=float)
    k = min(k, len(a))
    above = np.array([(a > v).sum() for v in a])  # genotypes strictly better
    tied = np.array([(a == v).sum() for v in a])  # its tie group, itself included
    free = np.clip(k - above, 0, None)
    return np.minimum(free, tied) / tied


def top_k_overlap(estimate: Sequence[float] | np.ndarray, reference: Sequence[float] | np.ndarray,
                  k: int = TOP_K) -> dict[str, float]:
    """Expected |top-k(estimate) & top-k(reference)| / k and P(the reference's best is in the estimate's top
    k), both higher = better, over independent random tie-breaks (see the module docstring)."""
    est, ref = finite_for_ranking(estimate), finite_for_ranking(reference)
    k = min(k, len(ref))
    if k == 0:
        return {"k": 0, "overlap": math.nan, "best_in_top_k": math.nan}
    in_est = top_k_membership(est, k)
    return {"k": k, "overlap": float(in_est @ top_k_membership(ref, k) / k),
            "best_in_top_k": float(in_est @ top_k_membership(ref, 1))}


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """[resamples, n] indices drawn with replacement, seeded: the one set of resamples every estimate uses."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def percentile_interval(samples: np.ndarray, confidence: float = 0.95) -> list[float]:
    """The central `confidence` percentile interval of bootstrap values (NaN resamples left out)."""
    s = samples[~np.isnan(samples)]
    if not s.size:
        return [math.nan, math.nan]
    q = (1.0 - confidence) / 2.0
    return [float(np.quantile(s, q)), float(np.quantile(s, 1.0 - q))]


def ceiling(r_ab: float) -> dict[str, float]:
    """The Spearman-Brown figures of a seed-to-seed correlation r_AB (see the module docstring)."""
    r = max(r_ab, 0.0) if math.isfinite(r_ab) else math.nan
    return {"r_ab": r_ab, "ceiling_one_seed": math.sqrt(r) if math.isfinite(r) else math.nan,
            "reliability_two_seed_mean": 2 * r / (1 + r) if math.isfinite(r) else math.nan}


def fidelity(reference: Sequence[float] | np.ndarray, estimates: Mapping[str, Sequence[float] | np.ndarray], *,
             groups: Sequence[Any] | None = None, resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
             ceiling_from: str | None = None, top_k: int = TOP_K,
             differences: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """Every estimate against the reference (all oriented higher = better, one value per genotype, in the same
    genotype order): tau and rho with paired-bootstrap intervals, the within-group figures when `groups` is
    given, the top-k figures, and the ceiling from the estimate named `ceiling_from` (a second seed of the
    reference). `differences` (pairs of estimate names (a, b)): tau(a) - tau(b) and rho(a) - rho(b) with the
    interval of the difference over the same resamples (does a rank better than b, beyond the noise of which
    genotypes were drawn?), under "differences" in the pairs' order."""
    ref = finite_for_ranking(reference)
    n = len(ref)
    est = {name: finite_for_ranking(v) for name, v in estimates.items()}
    for name, v in est.items():
        if len(v) != n:
            raise ValueError(f"estimate {name!r} has {len(v)} values for {n} genotypes")
    for pair in differences:
        unknown = [x for x in pair if x not in est]
        if unknown:
            raise ValueError(f"difference {pair!r} names an unknown estimate {unknown[0]!r}")
    grp = None if groups is None else np.asarray([str(g) for g in groups], dtype=object)
    labels = [] if grp is None else list(dict.fromkeys(grp.tolist()))
    idx = bootstrap_indices(n, resamples, seed) if n >= 2 and resamples > 0 else np.zeros((0, n), dtype=int)
    boot: dict[str, dict[str, list[np.ndarray]]] = {k: {"tau": [], "spearman": [], "wtau": [], "wrho": []}
                                                    for k in est}
    for start in range(0, len(idx), _CHUNK):
        rows = idx[start:start + _CHUNK]
        r = ref[rows]
        sr = _pair_signs(r)
        members = [] if grp is None else [grp[rows] == label for label in labels]
        pairs = [_pair_members(m) for m in members]
        for name, v in est.items():
            e = v[rows]
            se = _pair_signs(e)
            b = boot[name]
            b["tau"].append(_tau_from_signs(se, sr))
            b["spearman"].append(spearman_rho(e, r))
            if grp is not None:
                wt, wr = _within_rows(e, r, members, se, sr, pairs)
                b["wtau"].append(wt)
                b["wrho"].append(wr)
    out: dict[str, Any] = {}
    joined: dict[str, dict[str, np.ndarray]] = {}  # each estimate's resampled figures, joined once for every use
    for name, v in est.items():
        tau, rho = rank_correlations(v, ref)
        b = joined[name] = {k: np.concatenate(s) if s else np.zeros(0) for k, s in boot[name].items()}
        entry: dict[str, Any] = {"tau": tau, "tau_ci": percentile_interval(b["tau"], confidence), "spearman": rho,
                                 "spearman_ci": percentile_interval(b["spearman"], confidence),
                                 "top_k": top_k_overlap(v, ref, top_k)}
        if grp is not None:
            w = within_groups(v, ref, grp)
            entry["within"] = {"tau": w["tau"], "tau_ci": percentile_interval(b["wtau"], confidence),
                               "spearman": w["spearman"], "spearman_ci": percentile_interval(b["wrho"], confidence),
                               "groups": w["groups"]}
        if name == ceiling_from:
            entry["ceiling"] = {**ceiling(rho), "ceiling_one_seed_ci": [
                math.sqrt(max(c, 0.0)) if math.isfinite(c) else math.nan
                for c in percentile_interval(b["spearman"], confidence)]}
        out[name] = entry
    diffs = []
    for a, b in differences:
        d: dict[str, Any] = {"a": a, "b": b}
        for stat in ("tau", "spearman"):
            d[stat] = out[a][stat] - out[b][stat]
            d[f"{stat}_ci"] = percentile_interval(joined[a][stat] - joined[b][stat], confidence)
        diffs.append(d)
    return {"n": n, "resamples": len(idx), "confidence": confidence, "bootstrap_seed": seed,
            "estimates": out, "differences": diffs}
