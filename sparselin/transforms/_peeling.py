"""Subsampling design and peeling decoder behind :func:`~sparselin.transforms.sparse_wht`.

Notation ([SFHT], [SPR] in the research notes): n bits, N = 2**n, K-sparse Walsh spectrum X.
Each of C *groups* has an invertible matrix Sigma over GF(2) (n x n, held as its n columns,
each an n-bit integer). Its first b columns M hash a frequency k to the bin
``j = M^T k`` (b bits) of ``B = 2**b`` bins. Subsampling the signal at ``M l XOR d`` for
``l`` in GF(2)^b and taking the B-point WHT gives, for every bin j,

    U_d[j] = (B / N) * sum over {k : M^T k = j} of X[k] * (-1)**<d, k>

(the aliasing identity, checked in the tests), so after scaling by N / B each bin holds the
coefficients that hash to it, each signed by the offset's parity with k. Offsets come in
*chains*: a base offset r and the n - b offsets ``r XOR Sigma[:, i]`` for the columns i >= b
not used by the hash. In a bin holding one coefficient k, the sign of
``U_r * conj(U_{r XOR Sigma[:, i]})`` is ``(-1)**<Sigma[:, i], k>``, which is bit i of
``k' = Sigma^T k``; the low b bits of k' are the bin index, and ``k = Sigma^-T k'``.

* SparseFHT (noiseless): one chain with r = 0. A bin is a zero-ton when all its P values
  vanish; a singleton when every ratio ``U_{e_i} / U_0`` is +-1 (a bin holding two or more
  generic coefficients fails this on some bit); the value is U_0.
* SPRIGHT (noisy): several chains with random bases; bit i is decided by the soft majority
  ``sum over chains of Re(U_r conj(U_{r XOR Sigma[:, i]}))``; the value by least squares over
  all P offsets; zero-ton and singleton tests compare energies with chi-square quantiles of
  the noise level.

Both then peel: each singleton found is subtracted (all P offsets) from its bin in every
group, which can turn multitons elsewhere into singletons, until a pass finds no new one.
Every bin is processed in bulk with NumPy, a pass at a time, so the cost is a few array
operations per pass over ``C * P * B`` numbers, independent of N.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["Design", "decode", "make_design", "parity", "sample_positions"]


def parity(a: np.ndarray) -> np.ndarray:
    """Parity (0/1, int64) of the set bits of each entry of an integer array."""
    a = np.asarray(a).astype(np.uint64)
    if hasattr(np, "bitwise_count"):  # NumPy >= 2
        return (np.bitwise_count(a) & 1).astype(np.int64)
    for shift in (32, 16, 8, 4, 2, 1):
        a = a ^ (a >> np.uint64(shift))
    return (a & np.uint64(1)).astype(np.int64)


def _gf2_inverse_rows(cols: list[int], n: int) -> list[int] | None:
    """Rows of ``(Sigma^T)^-1`` given the columns of Sigma, or None if Sigma is singular.

    Row i of ``A = Sigma^T`` is column i of Sigma. Gauss-Jordan on ``[A | I]`` expresses each
    unit vector e_r as a combination c_r of the rows of A; then ``k_r = <c_r, A k>``.
    """
    # Each augmented row [A_i | e_i] is one Python integer (A_i in the low n bits), so that a
    # row operation is a single XOR (this search runs a few times per group and call).
    mask = (1 << n) - 1
    rows = [(int(cols[i]) & mask) | (1 << (n + i)) for i in range(n)]
    for r in range(n):
        bit = 1 << r
        for pivot in range(r, n):
            if rows[pivot] & bit:
                break
        else:
            return None
        pr = rows[pivot]
        rows[pivot] = rows[r]
        rows[r] = pr
        for i in range(n):
            if i != r and rows[i] & bit:
                rows[i] ^= pr
    return [row >> n for row in rows]


@dataclass(frozen=True)
class Design:
    """Everything the sampler and the decoder share (arrays of uint64 bit masks)."""

    n: int
    b: int
    cols: np.ndarray  # (C, n): the columns of each Sigma_c
    inv_rows: np.ndarray  # (C, n): rows of (Sigma_c^T)^-1, so k_r = parity(inv_rows[r] & k')
    offsets: np.ndarray  # (C, P): offsets d, chain by chain: base, base ^ cols[b], ...
    n_chains: int

    @property
    def n_groups(self) -> int:
        return self.cols.shape[0]

    @property
    def n_offsets(self) -> int:
        return self.offsets.shape[1]

    def hash(self, k: np.ndarray) -> np.ndarray:
        """Bin of each k in each group: (C, len(k)) int64."""
        out = np.zeros((self.n_groups, k.size), dtype=np.int64)
        for i in range(self.b):
            out |= parity(self.cols[:, i : i + 1] & k[None, :]) << i
        return out

    def signs(self, c: int, k: np.ndarray) -> np.ndarray:
        """``(-1)**<d_p, k>`` for the offsets of group c: (P, len(k)) float64."""
        return 1.0 - 2.0 * parity(self.offsets[c][:, None] & k[None, :])

    def unhash(self, c: int, kprime: np.ndarray) -> np.ndarray:
        """``k = Sigma_c^-T k'`` for an array of k'."""
        k = np.zeros(kprime.shape, dtype=np.uint64)
        for r in range(self.n):
            k |= parity(self.inv_rows[c, r] & kprime).astype(np.uint64) << np.uint64(r)
        return k


def make_design(
    n: int, b: int, n_groups: int, n_chains: int, hash_kind: str, rng: np.random.Generator
) -> Design:
    """Draw the hash matrices and offsets (random bases for every chain when n_chains > 1)."""
    cols = np.zeros((n_groups, n), dtype=np.uint64)
    inv = np.zeros((n_groups, n), dtype=np.uint64)
    for c in range(n_groups):
        while True:
            if hash_kind == "rotate":
                # [SFHT]'s deterministic hash: b consecutive bits of k, rotated per group.
                a = round(c * n / n_groups)
                cand = [1 << ((a + i) % n) for i in range(n)]
            else:
                cand = [int(v) for v in rng.integers(0, 1 << n, size=n, dtype=np.uint64)]
            rows = _gf2_inverse_rows(cand, n)
            if rows is not None:
                break
        cols[c] = cand
        inv[c] = rows
    per_chain = 1 + n - b
    offsets = np.zeros((n_groups, n_chains * per_chain), dtype=np.uint64)
    for c in range(n_groups):
        for q in range(n_chains):
            # One chain: SparseFHT's zero base; SPRIGHT's chains start at random offsets.
            base = 0 if n_chains == 1 else int(rng.integers(0, 1 << n, dtype=np.uint64))
            offsets[c, q * per_chain] = base
            for t, i in enumerate(range(b, n)):
                offsets[c, q * per_chain + 1 + t] = base ^ int(cols[c, i])
    return Design(n=n, b=b, cols=cols, inv_rows=inv, offsets=offsets, n_chains=n_chains)


def sample_positions(design: Design) -> np.ndarray:
    """Time indices sampled: (C, P, B) uint64, ``M_c l XOR d_{c,p}``."""
    B = 1 << design.b
    l = np.arange(B, dtype=np.uint64)
    ml = np.zeros((design.n_groups, B), dtype=np.uint64)
    for i in range(design.b):
        bit = ((l >> np.uint64(i)) & np.uint64(1)).astype(bool)
        ml[:, bit] ^= design.cols[:, i : i + 1]
    return ml[:, None, :] ^ design.offsets[:, :, None]


@dataclass
class DecodeResult:
    indices: np.ndarray
    values: np.ndarray
    success: bool
    n_iter: int
    message: str


def _threshold(nu2: float, dof: int, false_alarm: float, complex_data: bool) -> float:
    """Energy that pure noise of variance nu2 per observation exceeds with prob. false_alarm."""
    if complex_data:
        return float(stats.chi2.isf(false_alarm, 2 * dof)) * nu2 / 2
    return float(stats.chi2.isf(false_alarm, dof)) * nu2


def decode(
    U: np.ndarray,
    design: Design,
    *,
    method: str,
    nu2: float,
    floor: float,
    max_iter: int,
) -> DecodeResult:
    """Peel the bins ``U`` (C, P, B), scaled so that a bin holds ``sum X[k] (-1)**<d, k>``.

    ``nu2`` is the noise variance per observation (0 when noiseless); ``floor`` the energy
    per observation below which a value counts as round-off. ``U`` is modified in place.
    """
    C, P, B = U.shape
    n, b = design.n, design.b
    per_chain = 1 + n - b
    complex_data = np.iscomplexobj(U)
    bins = np.arange(B, dtype=np.uint64)
    # Per-bin energy thresholds; a union bound over the C * B bins keeps the chance that any
    # pure-noise bin is taken for a coefficient (or that a singleton is refused) near 1e-3.
    alarm = 1e-3 / (C * B)
    if nu2 > 0:
        zero_thr = _threshold(nu2, P, alarm, complex_data) + P * floor
        single_thr = _threshold(nu2, max(P - 1, 1), alarm, complex_data) + P * floor
        amp_thr = _threshold(nu2, 1, alarm, complex_data)
    else:
        zero_thr = single_thr = P * floor
        amp_thr = floor
    found_k: list[np.ndarray] = []
    found_v: list[np.ndarray] = []
    known: set[int] = set()
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        new_k, new_v = [], []
        for c in range(C):
            k, v = _singletons(
                U[c], c, design, bins, method, zero_thr, single_thr, amp_thr, floor, per_chain
            )
            new_k.append(k)
            new_v.append(v)
        k_all = np.concatenate(new_k)
        v_all = np.concatenate(new_v)
        if k_all.size:
            # The same coefficient found in several groups in one pass is peeled once; one
            # found in an earlier pass (its bin not emptied because of noise) is not again.
            k_all, first = np.unique(k_all, return_index=True)
            v_all = v_all[first]
            fresh = np.fromiter((int(x) not in known for x in k_all), bool, k_all.size)
            k_all, v_all = k_all[fresh], v_all[fresh]
        if k_all.size == 0:
            break
        known.update(int(x) for x in k_all)
        _peel(U, design, k_all, v_all)
        found_k.append(k_all)
        found_v.append(v_all)
    energy = np.sum(np.abs(U) ** 2, axis=1)
    unresolved = int(np.count_nonzero(energy > zero_thr))
    if found_k:
        indices = np.concatenate(found_k)
        values = np.concatenate(found_v)
        if not unresolved:  # otherwise the residuals hold unresolved coefficients too
            values = values + _refinement(U, design, indices)
        order = np.argsort(indices)
        indices, values = indices[order], values[order]
    else:
        indices = np.zeros(0, dtype=np.uint64)
        values = np.zeros(0, dtype=U.dtype)
    if unresolved:
        message = (
            f"{unresolved} of {C * B} bins still hold energy above the "
            f"{'noise' if nu2 > 0 else 'round-off'} level after {n_iter} peeling passes: the "
            "spectrum has more nonzero coefficients than the design resolves (raise sparsity "
            "or n_bins), or the noise level is higher than assumed"
        )
    else:
        message = f"every bin resolved after {n_iter} peeling passes"
    return DecodeResult(indices, values, unresolved == 0, n_iter, message)


def _singletons(Uc, c, design, bins, method, zero_thr, single_thr, amp_thr, floor, per_chain):
    """The (k, value) of the singleton bins of group c in this pass."""
    P = Uc.shape[0]
    n, b = design.n, design.b
    energy = np.sum(np.abs(Uc) ** 2, axis=0)
    active = np.flatnonzero(energy > zero_thr)
    if active.size == 0:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=Uc.dtype)
    V = Uc[:, active]
    kprime = bins[active].copy()
    if method == "sparsefht":
        # Ratio test: every U_{e_i} / U_0 must be +-1, up to the round-off of the bins.
        u0 = V[0]
        mag0 = np.abs(u0)
        ok = mag0**2 > floor
        ratios = V[1:] / np.where(ok, u0, 1)
        tol = 10 * np.sqrt(floor) / np.where(ok, mag0, 1)
        ok &= np.all(np.abs(np.abs(ratios) - 1) <= tol, axis=0)
        bits = (ratios.real < 0).astype(np.uint64)
        for t in range(n - b):
            kprime |= bits[t] << np.uint64(b + t)
        values = u0
    else:
        votes = np.zeros((n - b, active.size))
        for q in range(design.n_chains):
            base = V[q * per_chain]
            shifted = V[q * per_chain + 1 : (q + 1) * per_chain]
            votes += (base[None, :] * np.conj(shifted)).real
        for t in range(n - b):
            kprime |= (votes[t] < 0).astype(np.uint64) << np.uint64(b + t)
        ok = np.ones(active.size, dtype=bool)
        values = None
    k = design.unhash(c, kprime)
    signs = design.signs(c, k)  # (P, m)
    if values is None:
        values = np.sum(signs * V, axis=0) / P
    residual = np.sum(np.abs(V - signs * values[None, :]) ** 2, axis=0)
    ok &= residual <= single_thr
    ok &= P * np.abs(values) ** 2 > amp_thr
    return k[ok], values[ok]


def _peel(U: np.ndarray, design: Design, k: np.ndarray, v: np.ndarray) -> None:
    """Subtract the coefficients (k, v) from their bin in every group, at every offset."""
    where = design.hash(k)
    for c in range(U.shape[0]):
        contrib = design.signs(c, k) * v[None, :]  # (P, m)
        # Two coefficients peeled in one pass may share a bin: accumulate, don't overwrite.
        np.subtract.at(U[c].T, where[c], contrib.T)


def _refinement(U: np.ndarray, design: Design, k: np.ndarray) -> np.ndarray:
    """Least-squares correction of each value from what its C bins still hold.

    After peeling, bin j of group c holds ``X[k] - value + noise`` for each k in it (plus the
    misfits of other coefficients sharing it); averaging the sign-corrected residuals over
    the C groups and P offsets removes most of the noise of the single-bin estimate.
    """
    C, P, _ = U.shape
    where = design.hash(k)
    total = np.zeros(k.size, dtype=U.dtype)
    for c in range(C):
        total += np.sum(design.signs(c, k) * U[c][:, where[c]], axis=0)
    return total / (C * P)
