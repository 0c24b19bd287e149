"""A small Gaussian process over categorical choices, optionally with known numeric side inputs
(numpy + scipy, no torch).

Kernel, for choice codes x and side inputs u (a cheap objective known for every candidate):

    k(x, x') = s2 * exp(-sum_d theta_d [x_d != x'_d] - sum_c gamma_c (u_c - u'_c)^2)
               + sum_d a_d [x_d == x'_d] + sum_c b_c u_c u'_c

The first term is the exponentiated weighted Hamming ("categorical overlap") kernel with one relevance
weight per choice point (ARD: a choice point that does not change the metric gets theta -> 0) times a
squared-exponential kernel on the side inputs; it models interactions. The second is first order: a
linear model on the one-hot codes and the side inputs, so the effect of one choice carries over to
combinations never seen (a stationary kernel alone falls back to the mean there, which on architecture
tables under-predicts exactly the best networks). Both terms are one-hot matrix products:
sum_d theta_d [x_d != x'_d] = sum(theta) - (onehot(x) * theta) . onehot(x').
All hyper-parameters (theta, gamma, a, b, s2, noise) maximise the log marginal likelihood (L-BFGS-B,
analytic gradient) on standardised targets, inside wide fixed bounds; nothing here is specific to a table.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve, solve_triangular
from scipy.optimize import minimize

_LOG_BOUNDS_THETA = (np.log(1e-3), np.log(20.0))
_LOG_BOUNDS_S2 = (np.log(1e-2), np.log(20.0))
_LOG_BOUNDS_NOISE = (np.log(1e-6), np.log(1.0))
_LOG_BOUNDS_ADD = (np.log(1e-4), np.log(10.0))
_ADD0 = 0.05


class OneHot:
    """Integer codes (n x d) -> one-hot (n x sum of option counts)."""

    def __init__(self, n_options: list[int]) -> None:
        self.n_options = list(n_options)
        self.offsets = np.r_[0, np.cumsum(self.n_options)[:-1]].astype(int)
        self.width = int(sum(self.n_options))
        self.dim_of_col = np.repeat(np.arange(len(self.n_options)), self.n_options)

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes, dtype=int).reshape(-1, len(self.n_options))
        out = np.zeros((len(codes), self.width))
        out[np.arange(len(codes))[:, None], codes + self.offsets[None, :]] = 1.0
        return out


def _side(u: np.ndarray | None, n: int) -> np.ndarray:
    return np.zeros((n, 0)) if u is None else np.asarray(u, dtype=float).reshape(n, -1)


class CategoricalGP:
    """Fit on integer codes (+ side features) and one target; predict mean and deviation in target units."""

    def __init__(self, encoder: OneHot, n_side: int = 0) -> None:
        self.enc = encoder
        self.n_side = n_side
        d = len(encoder.n_options)
        self.log_theta = np.full(d + n_side, np.log(0.5))
        self.log_add = np.full(d + n_side, np.log(_ADD0))  # additive (first-order) variances
        self.log_s2 = 0.0
        self.log_noise = np.log(1e-2)

    # ---- the kernel ----------------------------------------------------------------------------
    def cross(self, codes_a: np.ndarray, u_a: np.ndarray | None, codes_b: np.ndarray,
              u_b: np.ndarray | None) -> np.ndarray:
        """k(a, b) for the current hyper-parameters (a: m rows, b: n rows)."""
        theta, add = np.exp(self.log_theta), np.exp(self.log_add)
        d = len(self.enc.n_options)
        pa, pb = self.enc(codes_a), self.enc(codes_b)
        expo = (pa * theta[:d][self.enc.dim_of_col]) @ pb.T - theta[:d].sum()
        lin = (pa * add[:d][self.enc.dim_of_col]) @ pb.T
        ua, ub = _side(u_a, len(expo)), _side(u_b, expo.shape[1])
        for c in range(self.n_side):
            expo -= theta[d + c] * (ua[:, c, None] - ub[None, :, c]) ** 2
            lin += add[d + c] * ua[:, c, None] * ub[None, :, c]
        return np.exp(self.log_s2) * np.exp(expo) + lin

    # ---- fitting -------------------------------------------------------------------------------
    def _pack(self) -> np.ndarray:
        return np.r_[self.log_theta, self.log_add, self.log_s2, self.log_noise]

    def _unpack(self, p: np.ndarray) -> None:
        k = len(self.log_theta)
        self.log_theta, self.log_add = p[:k].copy(), p[k:2 * k].copy()
        self.log_s2, self.log_noise = float(p[2 * k]), float(p[2 * k + 1])

    def fit(self, codes: np.ndarray, y: np.ndarray, u: np.ndarray | None = None,
            optimise: bool = True) -> CategoricalGP:
        y = np.asarray(y, dtype=float)
        codes = np.asarray(codes, dtype=int)
        self._codes, self._u = codes, _side(u, len(y))
        self._mu = float(y.mean())
        self._sd = float(y.std()) or 1.0
        self._z = (y - self._mu) / self._sd
        if optimise and len(y) >= 3:
            ham = (codes[:, None, :] != codes[None, :, :]).astype(float)
            sq = (self._u[:, None, :] - self._u[None, :, :]) ** 2
            self._diff = np.concatenate([ham, sq], axis=2)  # n x n x (d + c): distances of the exp term
            prod = self._u[:, None, :] * self._u[None, :, :]
            self._same = np.concatenate([1.0 - ham, prod], axis=2)  # similarities of the additive term
            self._optimise()
            del self._diff, self._same
        k = self.cross(codes, self._u, codes, self._u) + (np.exp(self.log_noise) + 1e-8) * np.eye(len(y))
        self._chol = np.linalg.cholesky(k)
        self._alpha = cho_solve((self._chol, True), self._z, check_finite=False)
        return self

    def _nll(self, p: np.ndarray) -> tuple[float, np.ndarray]:
        k_ = len(self.log_theta)
        theta, add = np.exp(p[:k_]), np.exp(p[k_:2 * k_])
        s2, noise = np.exp(p[2 * k_]), np.exp(p[2 * k_ + 1])
        kf = s2 * np.exp(-self._diff @ theta)
        n = len(self._z)
        k = kf + self._same @ add + (noise + 1e-8) * np.eye(n)
        try:
            c, low = cho_factor(k, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            return 1e10, np.zeros_like(p)
        alpha = cho_solve((c, low), self._z, check_finite=False)
        nll = 0.5 * self._z @ alpha + np.log(np.diag(c)).sum() + 0.5 * n * np.log(2 * np.pi)
        kinv = cho_solve((c, low), np.eye(n), check_finite=False)
        w = np.outer(alpha, alpha) - kinv  # d nll / dK = -w / 2
        wk = w * kf
        g_theta = 0.5 * np.einsum("ij,ijd->d", wk, self._diff) * theta
        g_add = -0.5 * np.einsum("ij,ijd->d", w, self._same) * add
        g_s2 = -0.5 * wk.sum()
        g_noise = -0.5 * np.trace(w) * noise
        return float(nll), np.r_[g_theta, g_add, g_s2, g_noise]

    def _optimise(self) -> None:
        k = len(self.log_theta)
        bounds = [_LOG_BOUNDS_THETA] * k + [_LOG_BOUNDS_ADD] * k + [_LOG_BOUNDS_S2, _LOG_BOUNDS_NOISE]
        lo, hi = np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])
        # warm start from the last fit, and one neutral start (so a bad warm start cannot stick)
        starts = [np.clip(self._pack(), lo, hi),
                  np.r_[np.full(k, np.log(0.5)), np.full(k, np.log(_ADD0)), 0.0, np.log(1e-2)]]
        best_p, best_f = None, np.inf
        for p0 in starts:
            res = minimize(self._nll, p0, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 100})
            if res.fun < best_f:
                best_p, best_f = res.x, res.fun
        if best_p is not None:
            self._unpack(best_p)

    # ---- prediction ------------------------------------------------------------------------------
    def predict(self, codes: np.ndarray, u: np.ndarray | None = None,
                observed: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Mean and deviation at `codes`; with `observed`, of a new observation (latent + noise)."""
        ks = self.cross(codes, u, self._codes, self._u)
        mean = ks @ self._alpha
        v = solve_triangular(self._chol, ks.T, lower=True, check_finite=False)
        var = np.clip(self.prior_var(len(ks), u) - (v * v).sum(axis=0), 1e-12, None)
        var += np.exp(self.log_noise) if observed else 0.0
        return self._mu + self._sd * mean, self._sd * np.sqrt(var)

    def prior_var(self, m: int, u: np.ndarray | None) -> np.ndarray:
        """k(x, x) for m points with side features u."""
        d = len(self.enc.n_options)
        add = np.exp(self.log_add)
        out = np.full(m, np.exp(self.log_s2) + add[:d].sum())
        uu = _side(u, m)
        for c in range(self.n_side):
            out += add[d + c] * uu[:, c] ** 2
        return out

    @property
    def relevance(self) -> np.ndarray:
        return np.exp(self.log_theta)


class PoolPosterior:
    """The posterior of a fitted GP over a fixed candidate pool, kept up to date one training point at a
    time: appending a point adds one row to the Cholesky factor L and one row to V = L^-1 k(train, pool),
    O(n * pool) instead of O(n^2 * pool) per proposal. The mean needs only V and L^-1 z, so the
    cross-kernel itself is never stored."""

    def __init__(self, gp: CategoricalGP, pool_codes: np.ndarray, pool_u: np.ndarray | None,
                 train_codes: np.ndarray, train_u: np.ndarray | None) -> None:
        self.gp = gp
        self.noise = float(np.exp(gp.log_noise)) + 1e-8
        self.pool_codes, self.pool_u = pool_codes, _side(pool_u, len(pool_codes))
        d = len(gp.enc.n_options)
        train_codes = np.asarray(train_codes, dtype=int).reshape(-1, d)
        n, m = len(train_codes), len(pool_codes)
        self.codes, self.u = train_codes.copy(), _side(train_u, n).copy()
        k = gp.cross(self.codes, self.u, self.codes, self.u) + self.noise * np.eye(n)
        self.chol = np.linalg.cholesky(k) if n else np.zeros((0, 0))
        self._v = np.zeros((max(2 * n, 64), m))
        if n:
            kp = gp.cross(self.codes, self.u, self.pool_codes, self.pool_u)
            self._v[:n] = solve_triangular(self.chol, kp, lower=True, check_finite=False)
        self.var_red = (self._v[:n] ** 2).sum(axis=0)
        self.prior = gp.prior_var(m, self.pool_u)

    def add(self, new_codes: np.ndarray, new_u: np.ndarray | None) -> None:
        new_codes = np.asarray(new_codes, dtype=int).reshape(-1, self.codes.shape[1])
        new_u = _side(new_u, len(new_codes))
        for code, uu in zip(new_codes, new_u):
            n = len(self.codes)
            code, uu = code[None, :], uu[None, :]
            k_old = self.gp.cross(self.codes, self.u, code, uu)[:, 0]
            ell = solve_triangular(self.chol, k_old, lower=True, check_finite=False) if n else k_old
            dd = np.sqrt(max(self.gp.prior_var(1, uu)[0] + self.noise - ell @ ell, 1e-10))
            chol = np.zeros((n + 1, n + 1))
            chol[:n, :n] = self.chol
            chol[n, :n] = ell
            chol[n, n] = dd
            self.chol = chol
            if n == len(self._v):
                self._v = np.vstack([self._v, np.zeros_like(self._v)])
            row = (self.gp.cross(code, uu, self.pool_codes, self.pool_u)[0] - ell @ self._v[:n]) / dd
            self._v[n] = row
            self.var_red += row * row
            self.codes = np.vstack([self.codes, code])
            self.u = np.vstack([self.u, uu])

    def predict(self, y: np.ndarray, observed: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Mean and deviation over the pool for targets `y` of the training points, in their order; with
        `observed`, the deviation of a new observation (latent + noise) rather than of the latent mean."""
        y = np.asarray(y, dtype=float)
        mu, sd = float(y.mean()), float(y.std()) or 1.0
        w = solve_triangular(self.chol, (y - mu) / sd, lower=True, check_finite=False)
        mean = w @ self._v[: len(y)]
        var = np.clip(self.prior - self.var_red, 1e-12, None) + (self.noise if observed else 0.0)
        return mu + sd * mean, sd * np.sqrt(var)


class Warp:
    """A monotone output transform (minimisation form) so a stationary GP is not dominated by a long tail
    of bad values: architecture tables have broken networks (10 % accuracy on CIFAR-10 next to 94 %).
    Values better than the median are kept as they are (the front lives there, and the surrogate's
    optimism must map back without distortion); worse ones are compressed logarithmically, in units of
    the inter-quartile range: t = med + iqr * log(1 + (y - med) / iqr). No parameter is fitted, so the
    inverse is exact everywhere and a wild fit cannot blow it up."""

    def __init__(self, y: np.ndarray) -> None:
        y = np.asarray(y, dtype=float)
        self.med = float(np.median(y))
        q1, q3 = np.percentile(y, [25, 75])
        self.iqr = float(q3 - q1) if q3 > q1 else float(np.std(y)) or 1.0

    def __call__(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        d = (y - self.med) / self.iqr
        return np.where(d > 0, self.med + self.iqr * np.log1p(np.maximum(d, 0.0)), y)

    def inverse(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        d = (t - self.med) / self.iqr
        return np.where(d > 0, self.med + self.iqr * np.expm1(np.clip(d, 0.0, 50.0)), t)
