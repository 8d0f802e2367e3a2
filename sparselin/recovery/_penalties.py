"""Weighted penalties: the weighted l0 "norm" and the weighted l1 norm.

A penalty is ``p(x) = sum_j p_j(x_j)`` with ``p_j`` a function of ``|x_j|``:

* ``WeightedL0``: ``p_j(z) = lam * w_j**2`` if ``z != 0`` else 0 (weights enter squared, as
  in Adcock, Brugiapaglia and Webster's weighted sparsity);
* ``WeightedL1``: ``p_j(z) = lam * w_j * |z|``.

Besides its value and prox, each penalty knows the three one-dimensional penalised minima
that the losses reduce a one-coordinate move to (``_losses``):

* squared loss: ``min_z |z - u|^2 + p_j(z)``,
* square-root loss: ``R - min_z (sqrt(delta^2 + |z - u|^2) + p_j(z))``,
* LAD loss: ``min_z ||v - z a||_1 + p_j(z)`` (a weighted median).

so that a loss and a penalty combine without a formula per pair. ``u`` enters only through
``|u|``: the minimiser lies on the ray of ``u`` (complex data included).
"""

from __future__ import annotations

import numpy as np

from . import _kernels

__all__ = ["PENALTIES", "Penalty", "WeightedL0", "WeightedL1"]


class Penalty:
    """Common interface; ``lam >= 0`` and the weights ``w >= 0`` are set once."""

    name = ""

    def __init__(self, lam: float, weights: np.ndarray) -> None:
        self.lam = float(lam)
        self.w = np.asarray(weights, dtype=np.float64)

    def value(self, x: np.ndarray) -> float:
        raise NotImplementedError

    def sq_envelope(self, U: np.ndarray) -> np.ndarray:
        """``min_z |z - U|^2 + p_j(z)`` for magnitudes ``U >= 0`` (one per column)."""
        raise NotImplementedError

    def sqrt_decrease(self, U, R, c2, delta) -> np.ndarray:
        """``R - min_z (sqrt(delta^2 + |z - U|^2) + p_j(z))``.

        ``R = ||r||``, ``c2 = |<a_j, r>|^2`` and ``delta^2 = R^2 - c2`` (the distance of the
        residual from the line of ``a_j``) are passed so that differences of nearly equal
        square roots are formed without cancellation.
        """
        raise NotImplementedError

    def lad_minimum(self, V: np.ndarray, A: np.ndarray) -> np.ndarray:
        """``min_z ||V[:, j] - z A[:, j]||_1 + p_j(z)`` for every column ``j`` (real data)."""
        raise NotImplementedError


class WeightedL0(Penalty):
    """``lam * sum_{j in supp x} w_j**2``."""

    name = "l0"

    @property
    def cost(self) -> np.ndarray:
        # (lam w) w, not lam w**2: w**2 overflows for weights above 1e154 (inf, and 0 * inf =
        # NaN at lam = 0, which stopped the iteration before its first atom), while the cost
        # itself is in range.
        return self.lam * self.w * self.w

    def value(self, x: np.ndarray) -> float:
        return float(np.sum(self.cost[x != 0]))

    def prox(self, u: np.ndarray, step: float) -> np.ndarray:
        """Hard thresholding: ``argmin_z |z - u|^2 / (2 step) + p(z)``."""
        return np.where(np.abs(u) ** 2 > 2 * step * self.cost, u, 0)

    def sq_envelope(self, U):
        return np.minimum(U**2, self.cost)

    def sqrt_decrease(self, U, R, c2, delta):
        rho = np.sqrt(delta**2 + U**2)
        at_zero = (c2 - U**2) / np.maximum(R + rho, np.finfo(float).tiny)
        # z = u (nonzero): the loss drops to delta and the penalty is paid.
        nonzero = c2 / np.maximum(R + delta, np.finfo(float).tiny) - self.cost
        return np.maximum(at_zero, nonzero)

    def lad_minimum(self, V, A):
        zero_pen = np.zeros(A.shape[1])
        fit, _ = _kernels.weighted_median_objective(V, A, zero_pen)
        return np.minimum(np.abs(V).sum(axis=0), fit + self.cost)


class WeightedL1(Penalty):
    """``lam * sum_j w_j |x_j|``."""

    name = "l1"

    @property
    def b(self) -> np.ndarray:
        return self.lam * self.w

    def value(self, x: np.ndarray) -> float:
        return float(self.lam * np.sum(self.w * np.abs(x)))

    def prox(self, u: np.ndarray, step: float) -> np.ndarray:
        """Soft thresholding (complex-aware): ``argmin_z |z - u|^2 / (2 step) + p(z)``."""
        mag = np.abs(u)
        shrink = np.maximum(mag - step * self.b, 0)
        return np.where(mag > 0, u * (shrink / np.where(mag > 0, mag, 1)), 0)

    def sq_envelope(self, U):
        # z = U - b/2 on the ray of u when U > b/2, else 0.
        return U**2 - np.maximum(U - self.b / 2, 0) ** 2

    def sqrt_decrease(self, U, R, c2, delta):
        b = self.b
        tiny = np.finfo(float).tiny
        rho = np.sqrt(delta**2 + U**2)
        at_zero = (c2 - U**2) / np.maximum(R + rho, tiny)
        # Stationary point of sqrt(delta^2 + (U - s)^2) + b s on s > 0: U - s = b delta /
        # sqrt(1 - b^2), which exists only for b < 1 and U > b delta / sqrt(1 - b^2); the
        # minimum is then b U + delta sqrt(1 - b^2).
        inner = b < 1
        root = np.sqrt(np.where(inner, 1 - b**2, 1.0))
        interior = inner & (U * root > b * delta)
        value_gap = c2 / np.maximum(R + delta, tiny) + delta * b**2 / (1 + root) - b * U
        return np.where(interior, np.maximum(value_gap, at_zero), at_zero)

    def sqrt_argmin(self, U, delta):
        """Minimiser magnitude ``s`` of ``sqrt(delta^2 + (U - s)^2) + b s`` over ``s >= 0``."""
        b = self.b
        inner = b < 1
        root = np.sqrt(np.where(inner, 1 - b**2, 1.0))
        s = U - b * delta / root
        return np.where(inner & (s > 0), s, 0.0)

    def lad_minimum(self, V, A):
        fit, _ = _kernels.weighted_median_objective(V, A, self.b)
        return fit


PENALTIES = {"l0": WeightedL0, "l1": WeightedL1}
