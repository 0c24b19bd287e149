"""A small Gaussian process over categorical choices (numpy + scipy, no torch).

Kernel: k(x, x') = s2 * exp(-sum_d theta_d * [x_d != x'_d]), the exponentiated weighted Hamming
("categorical overlap") kernel with one relevance weight per choice point (ARD): a choice point that
does not change the metric gets theta -> 0. Computed with one-hot codes, so the distance is one
matrix product: sum_d theta_d [x_d != x'_d] = sum(theta) - (onehot(x) * theta) . onehot(x').
Hyper-parameters (theta, s2, noise) maximise the log marginal likelihood (L-BFGS-B, analytic gradient)
on standardised targets, inside wide fixed bounds; nothing here is specific to one table.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve, solve_triangular
from scipy.optimize import minimize

_LOG_BOUNDS_THETA = (np.log(1e-3), np.log(20.0))
_LOG_BOUNDS_S2 = (np.log(1e-2), np.log(20.0))
_LOG_BOUNDS_NOISE = (np.log(1e-6), np.log(1.0))


class OneHot:
    """Integer codes (n x d) -> one-hot (n x sum of option counts) and back to per-dim slices."""

    def __init__(self, n_options: list[int]) -> None:
        self.n_options = list(n_options)
        self.offsets = np.r_[0, np.cumsum(self.n_options)[:-1]].astype(int)
        self.width = int(sum(self.n_options))
        self.dim_of_col = np.repeat(np.arange(len(self.n_options)), self.n_options)

    def __call__(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes, dtype=int).reshape(-1, len(self.n_options))
        out = np.zeros((len(codes), self.width))
        rows = np.arange(len(codes))[:, None]
        out[rows, codes + self.offsets[None, :]] = 1.0
        return out


class CategoricalGP:
    """Fit on integer codes and one target; predict mean and standard deviation in target units."""

    def __init__(self, encoder: OneHot) -> None:
        self.enc = encoder
        d = len(encoder.n_options)
        self.log_theta = np.full(d, np.log(0.5))
        self.log_s2 = 0.0
        self.log_noise = np.log(1e-2)

    # ---- fitting -------------------------------------------------------------------------------
    def fit(self, codes: np.ndarray, y: np.ndarray, optimise: bool = True) -> "CategoricalGP":
        y = np.asarray(y, dtype=float)
        self._mu = float(y.mean())
        self._sd = float(y.std()) or 1.0
        self._z = (y - self._mu) / self._sd
        self._phi = self.enc(codes)
        codes = np.asarray(codes, dtype=int)
        self._diff = (codes[:, None, :] != codes[None, :, :]).astype(float)  # n x n x d
        if optimise and len(y) >= 3:
            self._optimise()
        self._factor()
        return self

    def _params(self) -> np.ndarray:
        return np.r_[self.log_theta, self.log_s2, self.log_noise]

    def _set(self, p: np.ndarray) -> None:
        d = len(self.log_theta)
        self.log_theta, self.log_s2, self.log_noise = p[:d].copy(), float(p[d]), float(p[d + 1])

    def _nll(self, p: np.ndarray) -> tuple[float, np.ndarray]:
        d = len(self.log_theta)
        theta, s2, noise = np.exp(p[:d]), np.exp(p[d]), np.exp(p[d + 1])
        kf = s2 * np.exp(-self._diff @ theta)
        n = len(self._z)
        k = kf + (noise + 1e-8) * np.eye(n)
        try:
            c, low = cho_factor(k, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            return 1e10, np.zeros_like(p)
        alpha = cho_solve((c, low), self._z, check_finite=False)
        nll = 0.5 * self._z @ alpha + np.log(np.diag(c)).sum() + 0.5 * n * np.log(2 * np.pi)
        kinv = cho_solve((c, low), np.eye(n), check_finite=False)
        w = np.outer(alpha, alpha) - kinv  # d nll / dK = -w / 2
        wk = w * kf
        g_theta = 0.5 * np.einsum("ij,ijd->d", wk, self._diff) * theta  # -(-K*D) -> +
        g_s2 = -0.5 * wk.sum()
        g_noise = -0.5 * np.trace(w) * noise
        return float(nll), np.r_[g_theta, g_s2, g_noise]

    def _optimise(self) -> None:
        d = len(self.log_theta)
        bounds = [_LOG_BOUNDS_THETA] * d + [_LOG_BOUNDS_S2, _LOG_BOUNDS_NOISE]
        best_p, best_f = None, np.inf
        # warm start from the last fit, and one neutral start (so a bad warm start cannot stick)
        starts = [np.clip(self._params(), [b[0] for b in bounds], [b[1] for b in bounds]),
                  np.r_[np.full(d, np.log(0.5)), 0.0, np.log(1e-2)]]
        for p0 in starts:
            res = minimize(self._nll, p0, jac=True, method="L-BFGS-B", bounds=bounds,
                           options={"maxiter": 100})
            if res.fun < best_f:
                best_p, best_f = res.x, res.fun
        if best_p is not None:
            self._set(best_p)

    def _factor(self) -> None:
        theta, s2, noise = np.exp(self.log_theta), np.exp(self.log_s2), np.exp(self.log_noise)
        n = len(self._z)
        k = s2 * np.exp(-self._diff @ theta) + (noise + 1e-8) * np.eye(n)
        self._chol = np.linalg.cholesky(k)
        self._alpha = cho_solve((self._chol, True), self._z, check_finite=False)
        self._wphi = self._phi * theta[self.enc.dim_of_col][None, :]
        self._theta_sum = float(theta.sum())

    # ---- prediction ------------------------------------------------------------------------------
    def predict(self, codes: np.ndarray, observed: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Mean and deviation at `codes`; with `observed`, of a new observation (latent + noise)."""
        s2 = np.exp(self.log_s2)
        phi = self.enc(codes)
        ks = s2 * np.exp(phi @ self._wphi.T - self._theta_sum)  # m x n
        mean = ks @ self._alpha
        v = solve_triangular(self._chol, ks.T, lower=True, check_finite=False)
        var = np.clip(s2 - (v * v).sum(axis=0), 1e-12, None) + (np.exp(self.log_noise) if observed else 0.0)
        return self._mu + self._sd * mean, self._sd * np.sqrt(var)

    @property
    def relevance(self) -> np.ndarray:
        return np.exp(self.log_theta)


class PoolPosterior:
    """The posterior of a fitted GP over a fixed candidate pool, kept up to date one training point at a
    time: appending a point adds one row to the Cholesky factor L and one row to V = L^-1 k(train, pool),
    O(n * pool) instead of O(n^2 * pool) per proposal. The mean needs only V and L^-1 z, so the cross-kernel
    itself is never stored."""

    def __init__(self, gp: CategoricalGP, pool_codes: np.ndarray, train_codes: np.ndarray) -> None:
        self.theta = np.exp(gp.log_theta)
        self.s2 = float(np.exp(gp.log_s2))
        self.noise = float(np.exp(gp.log_noise)) + 1e-8
        self.enc = gp.enc
        self._pool_wphi = gp.enc(pool_codes) * self.theta[gp.enc.dim_of_col][None, :]
        self._theta_sum = float(self.theta.sum())
        train_codes = np.asarray(train_codes, dtype=int).reshape(-1, len(self.enc.n_options))
        n, m = len(train_codes), len(pool_codes)
        self.codes = train_codes.copy()
        k = self._k(train_codes, train_codes) + self.noise * np.eye(n)
        self.chol = np.linalg.cholesky(k) if n else np.zeros((0, 0))
        self._v = np.zeros((max(2 * n, 64), m))
        if n:
            self._v[:n] = solve_triangular(self.chol, self._k_pool(train_codes), lower=True, check_finite=False)
        self.var_red = (self._v[:n] ** 2).sum(axis=0)

    def _k(self, a_codes: np.ndarray, b_codes: np.ndarray) -> np.ndarray:
        diff = (a_codes[:, None, :] != b_codes[None, :, :]) @ self.theta
        return self.s2 * np.exp(-diff)

    def _k_pool(self, codes: np.ndarray) -> np.ndarray:
        return self.s2 * np.exp(self.enc(codes) @ self._pool_wphi.T - self._theta_sum)

    def add(self, new_codes: np.ndarray) -> None:
        for code in np.asarray(new_codes, dtype=int).reshape(-1, len(self.enc.n_options)):
            n = len(self.codes)
            k_old = self._k(self.codes, code[None, :])[:, 0]
            ell = solve_triangular(self.chol, k_old, lower=True, check_finite=False) if n else k_old
            d = np.sqrt(max(self.s2 + self.noise - ell @ ell, 1e-10))
            chol = np.zeros((n + 1, n + 1))
            chol[:n, :n] = self.chol
            chol[n, :n] = ell
            chol[n, n] = d
            self.chol = chol
            if n == len(self._v):
                self._v = np.vstack([self._v, np.zeros_like(self._v)])
            row = (self._k_pool(code[None, :])[0] - ell @ self._v[:n]) / d
            self._v[n] = row
            self.var_red += row * row
            self.codes = np.vstack([self.codes, code])

    def predict(self, y: np.ndarray, observed: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Mean and deviation over the pool for targets `y` of the training points, in their order; with
        `observed`, the deviation of a new observation (latent + noise) rather than of the latent mean."""
        y = np.asarray(y, dtype=float)
        mu, sd = float(y.mean()), float(y.std()) or 1.0
        w = solve_triangular(self.chol, (y - mu) / sd, lower=True, check_finite=False)
        mean = w @ self._v[: len(y)]
        var = np.clip(self.s2 - self.var_red, 1e-12, None) + (self.noise if observed else 0.0)
        return mu + sd * mean, sd * np.sqrt(var)


class Warp:
    """A monotone output transform so a stationary GP fits skewed metrics: standardise, then Yeo-Johnson
    with the lambda of maximum likelihood (as HEBO does). Accuracy tables have a long tail of broken
    architectures (10 % on CIFAR-10) that would otherwise dominate the fit; the warp compresses it."""

    def __init__(self, y: np.ndarray) -> None:
        from scipy.stats import yeojohnson_normmax

        y = np.asarray(y, dtype=float)
        self.mu, self.sd = float(y.mean()), float(y.std()) or 1.0
        z = (y - self.mu) / self.sd
        try:
            lam = float(yeojohnson_normmax(z)) if len(y) >= 5 and np.ptp(z) > 0 else 1.0
        except (ValueError, FloatingPointError, RuntimeError):
            lam = 1.0
        self.lam = float(np.clip(lam if np.isfinite(lam) else 1.0, -3.0, 5.0))

    def __call__(self, y: np.ndarray) -> np.ndarray:
        z = (np.asarray(y, dtype=float) - self.mu) / self.sd
        lam, out = self.lam, np.empty_like(z)
        pos = z >= 0
        out[pos] = np.log1p(z[pos]) if abs(lam) < 1e-8 else ((z[pos] + 1) ** lam - 1) / lam
        neg = ~pos
        out[neg] = -np.log1p(-z[neg]) if abs(lam - 2) < 1e-8 else -((1 - z[neg]) ** (2 - lam) - 1) / (2 - lam)
        return out

    def inverse(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        lam, z = self.lam, np.empty_like(t)
        pos = t >= 0
        if abs(lam) < 1e-8:
            z[pos] = np.expm1(np.minimum(t[pos], 50))
        else:
            z[pos] = np.maximum(t[pos] * lam + 1, 1e-12) ** (1 / lam) - 1
        neg = ~pos
        if abs(lam - 2) < 1e-8:
            z[neg] = -np.expm1(np.minimum(-t[neg], 50))
        else:
            z[neg] = 1 - np.maximum(1 - (2 - lam) * t[neg], 1e-12) ** (1 / (2 - lam))
        return self.mu + self.sd * np.clip(z, -1e6, 1e6)
