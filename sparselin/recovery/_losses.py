"""The three data-fit losses of the weighted LASSO family, each defined once.

=============  ===================  ==========================================
name           loss of residual r   refit on a support S
=============  ===================  ==========================================
``lasso``      ``||r||_2^2``        least squares (incremental Cholesky)
``sqrt_lasso`` ``||r||_2``          least squares (the same minimiser)
``lad_lasso``  ``||r||_1``          least absolute deviations (an LP, HiGHS)
=============  ===================  ==========================================

Each loss gives, for every column ``a_j`` (unit norm) at the current ``x`` and residual
``r = y - A x``, the **exact largest decrease of loss + penalty obtainable by changing the
single coordinate** ``x_j`` (insertion, re-adjustment or removal) -- the selection gain of
the loss-based OMP. Writing the new coefficient as ``z`` and ``v = r + x_j a_j`` (the residual
without atom ``j``), ``u = <a_j, v> = c_j + x_j``:

* squared: ``||v - z a_j||^2 = ||v||^2 - |u|^2 + |z - u|^2``, so the gain is
  ``p(x_j) - 2 Re(conj(x_j) c_j) - |x_j|^2 + |u|^2 - min_z (|z - u|^2 + p(z))``;
* square root: ``||v - z a_j|| = sqrt(delta^2 + |z - u|^2)`` with ``delta^2 = ||r||^2 -
  |c_j|^2`` (the distance of ``r`` from the line of ``a_j``, the same for every ``z``), so
  the gain is ``p(x_j) + ||r|| - min_z (sqrt(delta^2 + |z - u|^2) + p(z))``;
* LAD: the gain is ``||r||_1 + p(x_j) - min_z (||v - z a_j||_1 + p(z))``, a weighted
  median (with one more row ``(0, lam w_j)`` for the l1 penalty).

The one-dimensional minima belong to the penalty (``_penalties``). With ``x_j = 0`` and
``c_j = <a_j, r>`` these give the paper's insertion rules, e.g. ``(|c_j| - lam w_j / 2)_+^2``
for lasso-l1 and, for SR-lasso-l1, ``||r|| - lam w_j |c_j| - sqrt((1 - lam^2 w_j^2)(||r||^2 -
|c_j|^2))`` only when ``lam w_j < 1`` and ``|c_j| > lam w_j ||r||`` (else 0): the published
code omits that condition and returns a positive gain where the true one is zero
(research note A.4.3).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
from scipy.optimize import linprog

from ._penalties import Penalty

__all__ = ["LAD", "LOSSES", "Loss", "Sqrt", "Squared"]


class LeastSquaresRefit:
    """Least squares on a growing support, by one Cholesky row per added atom."""

    def __init__(self, A: np.ndarray, y: np.ndarray) -> None:
        self.A, self.y = A, y
        m, N = A.shape
        kmax = min(m, N)
        self.L = np.zeros((kmax, kmax), A.dtype)
        self.b = np.zeros(kmax, A.dtype)
        self.support: list[int] = []
        self.piv_tol = 10 * np.finfo(A.dtype).eps

    def add(self, j: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Add atom ``j``; return ``(coef on support, residual)``, or None if ``a_j`` is
        linearly dependent on the support (to working precision) or no room is left."""
        k = len(self.support)
        if k >= self.L.shape[0]:
            return None
        A, aj = self.A, self.A[:, j]
        if k:
            g = A[:, self.support].conj().T @ aj
            wv = sla.solve_triangular(self.L[:k, :k], g, lower=True)
            d = float(np.vdot(aj, aj).real - np.vdot(wv, wv).real)
            if not d > self.piv_tol:
                return None
            self.L[k, :k] = wv.conj()
            self.L[k, k] = np.sqrt(d)
        else:
            d = float(np.vdot(aj, aj).real)
            if not d > self.piv_tol:
                return None
            self.L[0, 0] = np.sqrt(d)
        self.support.append(j)
        self.b[k] = np.vdot(aj, self.y)
        k += 1
        L = self.L[:k, :k]
        z = sla.solve_triangular(L, self.b[:k], lower=True)
        coef = sla.solve_triangular(L, z, lower=True, trans="C")
        r = self.y - A[:, self.support] @ coef
        return coef, r


class LADRefit:
    """``min_z ||A_S z - y||_1`` on a growing support, as a linear program (HiGHS)."""

    def __init__(self, A: np.ndarray, y: np.ndarray) -> None:
        self.A, self.y = A, y
        self.support: list[int] = []

    def add(self, j: int) -> tuple[np.ndarray, np.ndarray] | None:
        support = [*self.support, j]
        coef = lad_fit(self.A[:, support], self.y)
        if coef is None:
            return None
        self.support = support
        return coef, self.y - self.A[:, support] @ coef


def lad_fit(B: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """``argmin_z ||B z - y||_1`` by HiGHS: variables ``(z, t)``, ``|B z - y| <= t``.

    HiGHS's feasibility and optimality tolerances are absolute (about 1e-7), so the LP is
    solved for ``y`` scaled by the power of two that brings its largest entry near 1 and
    ``z`` scaled back (exactly): unscaled, a signal of size 1e-30 came back as ``z = 0`` and
    one of size 1e30 as an LP failure. The columns of ``B`` are unit-norm in ``loss_omp``.
    """
    m, k = B.shape
    B64 = B.astype(np.float64)
    y64 = y.astype(np.float64)
    top = float(np.max(np.abs(y64)))
    if top == 0.0:
        return np.zeros(k, B.dtype)
    e = int(np.clip(np.frexp(top)[1], -1020, 1020))
    y64 = np.ldexp(y64, -e)
    cost = np.concatenate([np.zeros(k), np.ones(m)])
    eye = np.eye(m)
    A_ub = np.block([[B64, -eye], [-B64, -eye]])
    b_ub = np.concatenate([y64, -y64])
    bounds = [(None, None)] * k + [(0, None)] * m
    res = linprog(cost, A_ub=A_ub, b_ub=b_ub, bounds=bounds, method="highs")
    if res.status != 0:
        return None
    return np.ldexp(res.x[:k], e).astype(B.dtype)


class Loss:
    """A data-fit loss ``F(r)`` of the residual ``r = y - A x``."""

    name = ""
    complex_ok = True

    def value(self, r: np.ndarray) -> float:
        raise NotImplementedError

    def refit(self, A: np.ndarray, y: np.ndarray):
        return LeastSquaresRefit(A, y)

    def decrease(
        self, A: np.ndarray, r: np.ndarray, c: np.ndarray, x: np.ndarray, pen: Penalty
    ) -> np.ndarray:
        """Selection gain of every column (see the module docstring); A has unit columns,
        ``c = A^H r``."""
        raise NotImplementedError


class Squared(Loss):
    """``||r||_2^2`` (the weighted LASSO's data fit)."""

    name = "lasso"

    def value(self, r):
        return float(np.vdot(r, r).real)

    def decrease(self, A, r, c, x, pen):
        u = c + x
        U = np.abs(u)
        # ||r||^2 - ||v||^2 = -2 Re(conj(x) c) - |x|^2, formed without ||r||^2 itself.
        drop = -2 * (x.conj() * c).real - np.abs(x) ** 2
        px = _coordinate_penalty(pen, x)
        return px + drop + U**2 - pen.sq_envelope(U)


class Sqrt(Loss):
    """``||r||_2`` (the square-root / SR-LASSO data fit)."""

    name = "sqrt_lasso"

    def value(self, r):
        return float(np.linalg.norm(r))

    def decrease(self, A, r, c, x, pen):
        R = float(np.linalg.norm(r))
        c2 = np.abs(c) ** 2
        delta = np.sqrt(np.maximum(R * R - c2, 0.0))
        U = np.abs(c + x)
        return _coordinate_penalty(pen, x) + pen.sqrt_decrease(U, R, c2, delta)


class LAD(Loss):
    """``||r||_1`` (least absolute deviations, robust to gross outliers); real data only."""

    name = "lad_lasso"
    complex_ok = False

    def value(self, r):
        return float(np.abs(r).sum())

    def refit(self, A, y):
        return LADRefit(A, y)

    def decrease(self, A, r, c, x, pen):
        V = r[:, None] + A * x[None, :]
        return np.abs(r).sum() + _coordinate_penalty(pen, x) - pen.lad_minimum(V, A)


def _coordinate_penalty(pen: Penalty, x: np.ndarray) -> np.ndarray:
    """``p_j(x_j)`` for every coordinate."""
    if pen.name == "l0":
        return np.where(x != 0, pen.cost, 0.0)
    return pen.b * np.abs(x)


LOSSES = {"lasso": Squared, "sqrt_lasso": Sqrt, "lad_lasso": LAD}
