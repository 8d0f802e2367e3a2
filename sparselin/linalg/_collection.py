"""Shared-basis compression of a collection of matrices, under a per-matrix error threshold.

:func:`compress_collection` groups matrices with :func:`cluster_matrices`'s private core,
then stores each group as one shared orthonormal basis ``U`` plus one small coefficient matrix
per member (``A_i ~ U @ C_i``), and each matrix that gains nothing from sharing alone (as its
own truncated SVD, or raw). The threshold ``tol`` bounds the relative Frobenius error of
*every matrix*, ``||A_i - reconstruct(i)||_F <= tol * ||A_i||_F``, and that is checked on the
stored factors, not predicted: the clustering's bounds only propose groups.

The shared basis of a group is the top of the left singular vectors of the concatenation
``[A_1 ... A_p]``, read from the ``m x m`` Gram sum ``sum_i A_i A_i^T`` (accumulated block by
block, so the concatenation is never formed) when the group is at least ``m`` columns wide,
and from a thin SVD of the stacked blocks (``m x n_C``, smaller than the Gram matrix) when it
is narrower. Measured on two cores (float64): 20 blocks of 256 x 64, 11 ms for the Gram path
against 49 ms for the SVD of the 256 x 1280 concatenation; 24 blocks of 384 x 384, 34 ms
against 0.57-1.5 s; 8 blocks of 768 x 768, 0.11 s against 1.06 s. The Gram matrix squares
the condition number, so it is formed in float64 whatever the input precision, on data scaled
to a largest entry of 1 (entries near 1e+-150 neither overflow nor underflow), and the errors
that decide the rank are the *tail* energies ``sum_{j>k} ||u_j^T A_i||^2`` of a complete
basis, which involve no cancellation.
"""

from __future__ import annotations

import json
import math
import numbers
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._array import namespace, result_dtype, to_numpy
from .._threads import host_blas_limited
from .._validation import check_int, check_matrix, check_random_state, check_real

__all__ = ["CompressedCollection", "compress_collection"]

_METHODS = ("projection_bound", "estimate", "residual_bound", "norm_bound", "exact")
_LAYOUTS = ("horizontal", "vertical")
_FORMAT = "sparselin.CompressedCollection"
_FORMAT_VERSION = 1
# Candidates are scanned by their energy outside the head's span, not by norm: on matrices
# drawn from 3 subspaces of dimension 3 (12 blocks of 48 x 8..12, 0.1% noise, tol 0.02) the
# estimate found the 3 groups with this order, and 11 clusters (mostly singletons) by norm.
_ORDER = "residual"
# Quantiles of the matrices' own ranks tried as the clustering rank when rank=None (the
# clustering is cheap next to the SVDs that follow, so a few candidates are affordable).
# Two candidates: each is one clustering run, and the incremental estimate at rank ~80 on ten
# 384 x 384 matrices took seconds on the loaded 2-core machine.
_RANK_QUANTILES = (0.5, 1.0)


@dataclass
class CompressedCollection:
    """A collection of matrices stored as shared bases plus per-matrix coefficients.

    Returned by :func:`compress_collection`; see there for how it is built.

    Attributes
    ----------
    bases : list of arrays or None
        One entry per cluster. Horizontal layout: an ``m x k`` matrix with orthonormal columns
        (the shared column basis). Vertical layout: a ``k x n`` matrix with orthonormal rows
        (the shared row basis). ``None`` for a matrix stored raw.
    coefficients : list of arrays
        One entry per matrix: ``k x n_i`` (horizontal) or ``m_i x k`` (vertical), or the matrix
        itself (a copy) when it is stored raw.
    clusters : list of list of int
        The indices of the matrices in each cluster (a partition of ``range(len(mats))``).
    ranks : list of int or None
        The rank ``k`` of each cluster's basis; ``None`` for a raw matrix.
    errors : numpy.ndarray
        Measured relative Frobenius error ``||A_i - reconstruct(i)||_F / ||A_i||_F`` of each
        matrix (0 for an all-zero matrix), each ``<= tol``.
    cluster_errors : numpy.ndarray
        Measured relative error of each cluster's concatenation,
        ``sqrt(sum_i ||A_i - reconstruct(i)||_F^2 / sum_i ||A_i||_F^2)``, also ``<= tol``.
    layout : {"horizontal", "vertical"}
        Which side is shared: columns spaces (horizontal) or row spaces (vertical).
    tol : float
        The threshold the errors were held to.
    shapes : list of tuple of int
        The shape of each original matrix.
    method : str
        The clustering method that proposed the groups.
    rank : int or None
        The rank cap that was asked for (``None``: chosen per cluster).
    labels : numpy.ndarray
        ``labels[i]`` is the index of the cluster holding matrix ``i``.

    The properties ``n_params`` (numbers stored: bases, coefficients and raw matrices, entry
    by entry), ``n_params_dense`` (entries of the original matrices) and
    ``compression_ratio`` (their ratio) say what the sharing saved.
    """

    bases: list[Any]
    coefficients: list[Any]
    clusters: list[list[int]]
    ranks: list[int | None]
    errors: np.ndarray
    cluster_errors: np.ndarray
    layout: str
    tol: float
    shapes: list[tuple[int, int]]
    method: str
    rank: int | None = None
    labels: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        labels = np.full(len(self.shapes), -1, dtype=np.intp)
        for c, members in enumerate(self.clusters):
            labels[members] = c
        self.labels = labels

    def __len__(self) -> int:
        return len(self.shapes)

    @property
    def n_params(self) -> int:
        """Numbers stored: every basis and every coefficient (or raw) matrix, entry by entry."""
        return int(
            sum(int(b.size) for b in self.bases if b is not None)
            + sum(int(c.size) for c in self.coefficients)
        )

    @property
    def n_params_dense(self) -> int:
        """Numbers in the original matrices, ``sum_i m_i * n_i``."""
        return int(sum(m * n for m, n in self.shapes))

    @property
    def compression_ratio(self) -> float:
        """``n_params_dense / n_params`` (infinite when only all-zero matrices were stored)."""
        stored = self.n_params
        return self.n_params_dense / stored if stored else math.inf

    def reconstruct(self, i: int) -> Any:
        """The approximation of matrix ``i``, on the device and in the dtype it was stored.

        Parameters
        ----------
        i : int
            Index of the matrix in the original collection (negative indices count from the
            end).

        Returns
        -------
        array
            ``bases[c] @ coefficients[i]`` (horizontal) or ``coefficients[i] @ bases[c]``
            (vertical), ``c`` being the cluster of ``i``; a copy of the stored matrix if it
            was stored raw.
        """
        p = len(self.shapes)
        i = check_int(i, "i", low=-p, high=p - 1)
        i %= p
        basis = self.bases[int(self.labels[i])]
        coef = self.coefficients[i]
        if basis is None:
            return coef.copy()
        return basis @ coef if self.layout == "horizontal" else coef @ basis

    def to_dict(self) -> dict[str, Any]:
        """The collection as plain arrays and JSON-able metadata, e.g. for safetensors.

        Returns
        -------
        dict
            ``{"arrays": {name: array}, "metadata": {...}}``. The arrays are the stored ones
            (on their device; move them with :func:`sparselin._array.to_numpy` before writing
            a NumPy file), named ``"basis.<cluster>"`` and ``"coefficients.<matrix>"``. The
            metadata holds only lists, numbers and strings; ``json.dumps`` of it fits a
            safetensors header (whose metadata values must be strings).

        Examples
        --------
        >>> import json
        >>> import numpy as np
        >>> from sparselin.linalg import compress_collection
        >>> from sparselin.linalg import CompressedCollection
        >>> rng = np.random.default_rng(0)
        >>> U = rng.standard_normal((40, 3))
        >>> mats = [U @ rng.standard_normal((3, 10)) for _ in range(5)]
        >>> cc = compress_collection(mats, tol=1e-6)
        >>> d = cc.to_dict()
        >>> header = {"sparselin": json.dumps(d["metadata"])}  # safetensors metadata
        >>> back = CompressedCollection.from_dict(
        ...     {"arrays": d["arrays"], "metadata": header["sparselin"]})
        >>> bool(np.allclose(back.reconstruct(2), cc.reconstruct(2)))
        True
        """
        arrays: dict[str, Any] = {}
        for c, b in enumerate(self.bases):
            if b is not None:
                arrays[f"basis.{c}"] = b
        for i, coef in enumerate(self.coefficients):
            arrays[f"coefficients.{i}"] = coef
        metadata = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "layout": self.layout,
            "tol": float(self.tol),
            "method": self.method,
            "rank": self.rank,
            "shapes": [[int(m), int(n)] for m, n in self.shapes],
            "clusters": [[int(i) for i in members] for members in self.clusters],
            "ranks": [None if k is None else int(k) for k in self.ranks],
            "errors": [float(e) for e in self.errors],
            "cluster_errors": [float(e) for e in self.cluster_errors],
        }
        return {"arrays": arrays, "metadata": metadata}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompressedCollection:
        """Rebuild a collection from :meth:`to_dict`'s output.

        Parameters
        ----------
        data : dict
            ``{"arrays": ..., "metadata": ...}``; the metadata may be the dict itself or its
            JSON text (as stored in a safetensors header). The arrays may be NumPy or CuPy
            (the collection lives where they do).

        Returns
        -------
        CompressedCollection
        """
        if not isinstance(data, dict) or "arrays" not in data or "metadata" not in data:
            raise TypeError("data must be a dict with keys 'arrays' and 'metadata'")
        meta = data["metadata"]
        if isinstance(meta, (str, bytes)):
            meta = json.loads(meta)
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            raise ValueError(f"data['metadata'] is not a {_FORMAT} description")
        if int(meta.get("version", -1)) > _FORMAT_VERSION:
            raise ValueError(
                f"data was written by a newer format version {meta['version']} "
                f"(this sparselin reads <= {_FORMAT_VERSION})"
            )
        arrays = data["arrays"]
        shapes = [(int(m), int(n)) for m, n in meta["shapes"]]
        clusters = [[int(i) for i in members] for members in meta["clusters"]]
        ranks = [None if k is None else int(k) for k in meta["ranks"]]
        layout = meta["layout"]
        bases: list[Any] = []
        for c, k in enumerate(ranks):
            if k is None:
                bases.append(None)
                continue
            b = arrays[f"basis.{c}"]
            n_shared = shapes[clusters[c][0]][0 if layout == "horizontal" else 1]
            want = (n_shared, k) if layout == "horizontal" else (k, n_shared)
            if tuple(b.shape) != want:
                raise ValueError(f"arrays['basis.{c}'] has shape {b.shape}, expected {want}")
            bases.append(b)
        coefficients = []
        for i, shape in enumerate(shapes):
            coef = arrays[f"coefficients.{i}"]
            coefficients.append(coef)
            k = ranks[_cluster_of(clusters, i)]
            if k is None:
                want = shape
            else:
                want = (k, shape[1]) if layout == "horizontal" else (shape[0], k)
            if tuple(coef.shape) != want:
                raise ValueError(
                    f"arrays['coefficients.{i}'] has shape {coef.shape}, expected {want}"
                )
        return cls(
            bases=bases,
            coefficients=coefficients,
            clusters=clusters,
            ranks=ranks,
            errors=np.asarray(meta["errors"], dtype=np.float64),
            cluster_errors=np.asarray(meta["cluster_errors"], dtype=np.float64),
            layout=layout,
            tol=float(meta["tol"]),
            shapes=shapes,
            method=meta["method"],
            rank=None if meta["rank"] is None else int(meta["rank"]),
        )


def _cluster_of(clusters: list[list[int]], i: int) -> int:
    for c, members in enumerate(clusters):
        if i in members:
            return c
    raise ValueError(f"matrix {i} is in no cluster of the metadata")


def compress_collection(
    mats: Sequence[Any],
    *,
    tol: float,
    rank: int | None = None,
    method: str = "projection_bound",
    layout: str = "horizontal",
    random_state: int | np.random.Generator | None = None,
) -> CompressedCollection:
    r"""Compress matrices by sharing bases between similar ones, within an error threshold.

    The matrices are grouped by :func:`sparselin.linalg.cluster_matrices` (``method``), each
    group of ``p`` matrices ``A_1 ... A_p`` (``m x n_i``) is stored as one orthonormal basis
    ``U`` (``m x k``) and coefficients ``C_i = U^T A_i`` (``k x n_i``), so that
    ``A_i ~ U C_i``, at a cost of ``k (m + sum_i n_i)`` numbers instead of ``m sum_i n_i``.
    ``U`` is the top-``k`` left singular basis of the concatenation ``[A_1 ... A_p]``
    (computed without forming it when the group is wider than ``m``).

    The threshold holds per matrix, and is measured: after compression
    ``||A_i - reconstruct(i)||_F <= tol * ||A_i||_F`` for *every* ``i`` (computed on the stored
    factors in the stored precision), and therefore also for every cluster's concatenation.
    A group's rank ``k`` is the smallest that meets this for all its members. A member that
    cannot meet it within the rank cap is moved out and stored alone; a group whose sharing
    stores no fewer numbers than its members alone is split; a matrix alone is stored as its
    own truncated SVD (``U_i``, ``C_i = S_i V_i^T``) or, when that saves nothing, raw
    (error 0).

    Parameters
    ----------
    mats : sequence of 2-D arrays
        The matrices: NumPy or CuPy (all on one device), float32 or float64 (integers become
        float64; mixed precisions are promoted). Horizontal layout: all with the same number
        of rows; vertical layout: all with the same number of columns. Never modified.
    tol : float
        Relative Frobenius error allowed for each matrix, in (0, 1).
    rank : int or None, default None
        Largest rank of a shared basis (and the rank the clustering targets). ``None``: no
        cap; the clustering rank is the median or the largest of the matrices' own ranks at
        ``tol``, whichever the clustering predicts to store fewer numbers, and each cluster then
        takes the smallest rank that meets ``tol``.
    method : str, default "projection_bound"
        One of ``"projection_bound"``, ``"estimate"``, ``"residual_bound"``,
        ``"norm_bound"``, ``"exact"``: the clustering that proposes groups (see
        :func:`sparselin.linalg.cluster_matrices`), scanning candidates by their energy
        outside the group's span. The threshold is
        guaranteed by measurement whichever is chosen. The default, the error of projecting
        onto the head's top-``rank`` basis, is provable, cheap and finds the same groups as
        ``"exact"`` on matrices from shared subspaces; the paper's two bounds
        (``"residual_bound"``, ``"norm_bound"``) credit a new block only with its energy
        outside the group's span, so they merge a block only when it is small next to the
        group (on matrices from a few shared subspaces they merge nothing at all).
        ``"estimate"`` is the incremental truncated SVD estimate. ``"exact"`` takes an SVD of
        every candidate group (slow; a reference).
    layout : {"horizontal", "vertical"}, default "horizontal"
        ``"horizontal"``: share column spaces (``A_i ~ U C_i``, concatenation
        ``[A_1 ... A_p]``). ``"vertical"``: share row spaces (``A_i ~ C_i V^T``, concatenation
        ``[A_1; ...; A_p]``, computed through transposes without copying).
    random_state : None, int or numpy.random.Generator
        Seed for the ``"estimate"`` clustering; the rest is deterministic.

    Returns
    -------
    CompressedCollection
        The bases, coefficients, clusters, ranks, and measured per-matrix and per-cluster
        errors; ``reconstruct(i)``, ``n_params``, ``n_params_dense``, ``to_dict()``.

    Raises
    ------
    ValueError
        Empty collection; matrices of different shared dimension; NaN or infinity; ``tol``
        outside (0, 1); ``rank < 1``; unknown ``method`` or ``layout``.
    TypeError
        A matrix that is not a dense numeric 2-D array (sparse matrices, LinearOperators,
        complex data); NumPy and CuPy mixed.

    Notes
    -----
    Cost, per cluster of total width ``n_C``: ``O(m^2 n_C + m^3)`` for the Gram path
    (``n_C >= m``) or ``O(m n_C^2)`` for the stacked SVD, plus ``O(m k n_C)`` per rank tried
    for the measured errors; the per-matrix ranks used for the sharing decision come from each
    matrix's own ``min(m, n_i)``-sized Gram eigenvalues. All of it runs where the data is
    (NumPy or CuPy).

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.linalg import compress_collection
    >>> rng = np.random.default_rng(0)
    >>> bases = [np.linalg.qr(rng.standard_normal((64, 4)))[0] for _ in range(2)]
    >>> mats = [bases[i % 2] @ rng.standard_normal((4, 16))
    ...         + 1e-3 * rng.standard_normal((64, 16)) for i in range(10)]
    >>> cc = compress_collection(mats, tol=0.01)
    >>> len(cc.clusters), cc.ranks
    (2, [4, 4])
    >>> bool(cc.errors.max() <= 0.01), cc.n_params, cc.n_params_dense
    (True, 1152, 10240)
    """
    blocks, xp, dtype = _iv(mats, tol, rank, method, layout)
    rng = check_random_state(random_state)
    # Every factorisation here is of a few hundred rows or columns, many of them in a row:
    # OpenBLAS splits each across its pool, whose workers then spin between calls. On the
    # 2-core machine (loaded), the 10 per-matrix spectra of MiniLM's 384-row matrices took
    # 22 s at default threads against 0.37 s at one thread, and the clustering 66 s against
    # 7.4 s. A GPU has no such pools.
    with host_blas_limited(xp):
        plan = _Planner(blocks, float(tol), rank, xp, dtype)
        groups = plan.run(method, rng)
    groups.sort(key=lambda g: g.members[0])

    p = len(blocks)
    coefficients: list[Any] = [None] * p
    errors = np.zeros(p)
    bases, clusters, ranks, cluster_errors = [], [], [], []
    for g in groups:
        clusters.append(list(g.members))
        ranks.append(g.rank)
        cluster_errors.append(g.cluster_error)
        if layout == "horizontal":
            bases.append(g.basis)
            for i, coef, err in zip(g.members, g.coefs, g.errors, strict=True):
                coefficients[i] = coef
                errors[i] = err
        else:
            # Computed on the transposes A_i^T ~ U C_i: A_i ~ C_i^T U^T.
            bases.append(None if g.basis is None else xp.ascontiguousarray(g.basis.T))
            for i, coef, err in zip(g.members, g.coefs, g.errors, strict=True):
                coefficients[i] = xp.ascontiguousarray(coef.T)
                errors[i] = err
    shapes = [tuple(int(d) for d in B.shape) for B in blocks]
    if layout == "vertical":
        shapes = [(n, m) for m, n in shapes]
    return CompressedCollection(
        bases=bases,
        coefficients=coefficients,
        clusters=clusters,
        ranks=ranks,
        errors=errors,
        cluster_errors=np.asarray(cluster_errors, dtype=np.float64),
        layout=layout,
        tol=float(tol),
        shapes=shapes,
        method=method,
        rank=rank,
    )


def _iv(
    mats: Any, tol: Any, rank: Any, method: Any, layout: Any
) -> tuple[list[Any], types.ModuleType, np.dtype]:
    """Validate once; return the blocks as horizontal-layout views, the namespace, the dtype."""
    check_real(tol, "tol", low=0.0, high=1.0, low_open=True, high_open=True)
    if rank is not None:
        check_int(rank, "rank", low=1)
    if method not in _METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, _METHODS))}, got {method!r}")
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be 'horizontal' or 'vertical', got {layout!r}")
    if isinstance(mats, (str, bytes, dict)) or not hasattr(mats, "__iter__"):
        raise TypeError(
            f"mats must be a sequence of 2-D arrays (a list or tuple), got {type(mats).__name__}"
        )
    if getattr(mats, "ndim", None) == 2:
        raise TypeError("mats must be a sequence of 2-D arrays, got a single 2-D array")
    mats = list(mats)
    if not mats:
        raise ValueError("mats must hold at least one matrix, got an empty collection")
    checked = []
    for i, A in enumerate(mats):
        if isinstance(A, numbers.Number) or A is None:
            raise TypeError(f"mats[{i}] must be a 2-D array, got {type(A).__name__}")
        A, kind, _ = check_matrix(A, f"mats[{i}]", allow_operator=False)
        if kind != "dense":
            raise TypeError(
                f"mats[{i}] must be a dense array, got a sparse matrix; pass mats[{i}].toarray()"
            )
        if A.dtype.kind == "c":
            raise TypeError(f"mats[{i}] must be real, got dtype {A.dtype}")
        checked.append(A)
    xp = namespace(*checked)  # raises TypeError when NumPy and CuPy are mixed
    dtype = result_dtype(np.result_type(*[A.dtype for A in checked]))
    axis, name = (0, "rows") if layout == "horizontal" else (1, "columns")
    shared = checked[0].shape[axis]
    for i, A in enumerate(checked):
        if A.shape[axis] != shared:
            other = "vertical" if layout == "horizontal" else "horizontal"
            raise ValueError(
                f"mats[{i}] has {A.shape[axis]} {name} but mats[0] has {shared}: the {layout} "
                f"layout shares the {'column' if axis == 0 else 'row'} space, so every matrix "
                f"needs the same number of {name} (layout='{other}' shares the other side)"
            )
    blocks = [A.astype(dtype, copy=False) for A in checked]
    if layout == "vertical":
        blocks = [A.T for A in blocks]
    return blocks, xp, np.dtype(dtype)


@dataclass
class _Group:
    """One stored cluster, in the horizontal orientation."""

    members: list[int]
    basis: Any  # m x k, or None when the single member is stored raw
    coefs: list[Any]
    rank: int | None
    errors: list[float]
    cluster_error: float


class _Planner:
    """Turns proposed clusters into stored groups meeting ``tol`` for every member."""

    def __init__(
        self, blocks: list[Any], tol: float, rank: int | None, xp: types.ModuleType, dtype: Any
    ) -> None:
        self.blocks = blocks
        self.tol = tol
        self.tol2 = tol * tol
        self.xp = xp
        self.dtype = dtype
        self.m = int(blocks[0].shape[0])
        self.widths = [int(B.shape[1]) for B in blocks]
        self.kmax = self.m if rank is None else min(rank, self.m)
        self.rank = rank
        # Largest |entry| of each block: the scale that keeps the float64 Gram sums in range.
        self.amax = [float(xp.abs(B).max()) for B in blocks]
        self.alone_ranks = [self._alone_rank(i) for i in range(len(blocks))]
        self.alone_params = [self._alone_params(i) for i in range(len(blocks))]

    # ----------------------------------------------------------------- per-matrix facts

    def _scaled64(self, i: int, scale: float) -> Any:
        # A copy in float64 scaled by 1/scale: the caller's array is never touched.
        return self.blocks[i].astype(np.float64) * (1.0 / scale)

    def _alone_rank(self, i: int) -> int | None:
        """Smallest rank (<= kmax) at which matrix i alone meets tol, None if none does."""
        if self.amax[i] == 0.0:
            return 0
        B = self._scaled64(i, self.amax[i])
        G = B.T @ B if B.shape[1] <= B.shape[0] else B @ B.T
        w = to_numpy(self.xp.linalg.eigvalsh(G))[::-1].clip(min=0.0)
        rel = _tails(w[None, :])[0] / max(float(w.sum()), np.finfo(np.float64).tiny)
        ok = np.flatnonzero(rel[: self.kmax + 1] <= self.tol2)
        return int(ok[0]) if ok.size else None

    def _alone_params(self, i: int) -> int:
        m, n = self.m, self.widths[i]
        k = self.alone_ranks[i]
        if k is None or k * (m + n) >= m * n:
            return m * n
        return k * (m + n)

    # ----------------------------------------------------------------- clustering

    def run(self, method: str, rng: Any) -> list[_Group]:
        from ._cluster import _cluster_matrices_core

        def propose(r: int) -> list[list[int]]:
            result = _cluster_matrices_core(
                self.blocks, r, self.tol, method=method, order=_ORDER, random_state=rng
            )
            return [sorted(int(i) for i in members) for members in result.clusters]

        if self.rank is not None:
            proposal = propose(self.kmax)
        else:
            known = [k for k in self.alone_ranks if k is not None]
            ranks = np.asarray(known or [self.m])
            candidates = sorted(
                {
                    min(max(int(np.quantile(ranks, q, method="lower")), 1), self.m)
                    for q in _RANK_QUANTILES
                }
            )
            best = None
            for r in candidates:
                clusters = propose(r)
                predicted = sum(self._predicted_params(c, r) for c in clusters)
                if best is None or predicted < best[0]:
                    best = (predicted, clusters)
            assert best is not None
            proposal = best[1]
        groups: list[_Group] = []
        for members in proposal:
            groups.extend(self._plan(members))
        return groups

    def _predicted_params(self, members: list[int], r: int) -> int:
        alone = sum(self.alone_params[i] for i in members)
        if len(members) == 1:
            return alone
        return min(alone, r * (self.m + sum(self.widths[i] for i in members)))

    # ----------------------------------------------------------------- planning

    def _plan(self, members: list[int]) -> list[_Group]:
        pending = [list(members)]
        out: list[_Group] = []
        while pending:
            mem = pending.pop()
            if len(mem) == 1:
                out.append(self._single(mem[0]))
                continue
            U, rel_tails, scale = self._basis(mem)
            kcap = min(self.kmax, U.shape[1])
            ok = np.flatnonzero((rel_tails[:, : kcap + 1] <= self.tol2).all(axis=0))
            if ok.size == 0:
                # The member worst served by the cap leaves, and the rest are tried again.
                worst = int(np.argmax(rel_tails[:, kcap]))
                pending.append([i for j, i in enumerate(mem) if j != worst])
                pending.append([mem[worst]])
                continue
            k = int(ok[0])
            evicted = self._evictions(mem, rel_tails, k)
            if evicted:
                # A few members force the shared rank up (the clustering bounds the group's
                # error, not each member's): they leave, as a group of their own, and the
                # rest is planned again with a basis no longer bent towards them.
                pending.append([i for i in mem if i not in evicted])
                pending.append(evicted)
                continue
            budget = sum(self.alone_params[i] for i in mem)
            group = self._materialize(mem, U, scale, k, kcap, budget)
            if group is None:
                # Sharing stores no fewer numbers than the members alone (or the stored
                # precision could not meet tol): each member goes alone.
                pending.extend([i] for i in mem)
            else:
                out.append(group)
        return out

    def _evictions(self, mem: list[int], rel_tails: np.ndarray, k: int) -> list[int]:
        """Members whose removal lets the rest share a lower rank for fewer numbers in all.

        Moving out the members that fail at rank ``k2 < k`` costs their storage alone; the
        rank ``k2`` (with the same basis, an upper bound on what a re-fitted one needs) that
        minimises the predicted total wins. On 40 matrices from 4 subspaces of dimension 6
        at tol 0.3, clusters that had absorbed one matrix of another subspace needed rank 11
        instead of 6 without this.
        """
        if k == 0:
            return []
        m = self.m
        widths = np.asarray([self.widths[i] for i in mem])
        alone = np.asarray([self.alone_params[i] for i in mem])
        fails = rel_tails[:, :k] > self.tol2  # (members, k2)
        n_fail = fails.sum(axis=0)
        kept_width = widths.sum() - widths @ fails
        cost = np.arange(k) * (m + kept_width) + alone @ fails
        # Only proper, non-empty evictions (all members failing is no group at all).
        cost = np.where((n_fail > 0) & (n_fail < len(mem)), cost, np.inf)
        k2 = int(np.argmin(cost))
        if not cost[k2] < k * (m + widths.sum()):
            return []
        return [i for j, i in enumerate(mem) if fails[j, k2]]

    def _single(self, i: int) -> _Group:
        m, n = self.m, self.widths[i]
        k = self.alone_ranks[i]
        if k is not None and k * (m + n) < m * n:
            if k == 0:
                zero = self.xp.zeros((m, 0), dtype=self.dtype)
                coef = self.xp.zeros((0, n), dtype=self.dtype)
                return _Group([i], zero, [coef], 0, [0.0], 0.0)
            U, rel_tails, scale = self._basis([i])
            kcap = min(self.kmax, U.shape[1])
            ok = np.flatnonzero(rel_tails[0, : kcap + 1] <= self.tol2)
            if ok.size:
                group = self._materialize([i], U, scale, int(ok[0]), kcap, m * n)
                if group is not None:
                    return group
        raw = self.blocks[i].astype(self.dtype, copy=True)
        return _Group([i], None, [raw], None, [0.0], 0.0)

    def _basis(self, mem: list[int]) -> tuple[Any, np.ndarray, float]:
        """Left singular basis of [A_mem] (float64) and each member's relative tail energies.

        ``rel_tails[j, k]`` is ``||A_j - U_k U_k^T A_j||_F^2 / ||A_j||_F^2`` for the first
        ``k`` columns ``U_k``, from the energies along the remaining columns of a basis that
        spans every member (no subtraction, so small errors are resolved to float64).
        """
        xp = self.xp
        scale = max(self.amax[i] for i in mem)
        if scale == 0.0:
            return xp.zeros((self.m, 0)), np.zeros((len(mem), 1)), 1.0
        width = sum(self.widths[i] for i in mem)
        if width >= self.m:
            G = xp.zeros((self.m, self.m))
            for i in mem:
                B = self._scaled64(i, scale)
                G += B @ B.T
            _, V = xp.linalg.eigh(G)
            U = V[:, ::-1]
        else:
            M = xp.concatenate([self._scaled64(i, scale) for i in mem], axis=1)
            U = xp.linalg.svd(M, full_matrices=False)[0]
        energy = np.empty((len(mem), U.shape[1]))
        norms = np.empty(len(mem))
        for j, i in enumerate(mem):
            # Each member in its own units (U is scale-free): at the group's scale, a member
            # 1e-300 times smaller than the largest underflows to 0 and "meets" any tol (its
            # relative error was reported 0 where it was 2e-4 > tol).
            B = self._scaled64(i, self.amax[i] or 1.0)
            energy[j] = to_numpy(xp.sum((U.T @ B) ** 2, axis=1))
            norms[j] = float(xp.sum(B * B))
        tails = _tails(energy)
        rel = np.divide(tails, norms[:, None], out=np.zeros_like(tails), where=norms[:, None] > 0)
        return U, rel, scale

    def _materialize(
        self, mem: list[int], U: Any, scale: float, k: int, kcap: int, budget: int
    ) -> _Group | None:
        """Store ``mem`` at the smallest rank >= k whose *measured* errors meet tol.

        The tails predict the errors in float64; the stored factors (float32, say) add their
        own rounding, so the errors are measured on exactly what :meth:`reconstruct` computes
        and the rank raised when rounding pushed a member over. ``None`` when no rank up to
        ``kcap`` both meets tol and stores fewer than ``budget`` numbers.
        """
        xp = self.xp
        width = sum(self.widths[i] for i in mem)
        while k <= kcap and k * (self.m + width) < budget:
            U64 = U[:, :k]
            basis = xp.ascontiguousarray(U64.astype(self.dtype))
            coefs, errs, res2, tot2 = [], [], 0.0, 0.0
            for i in mem:
                A = self.blocks[i]
                coef = xp.ascontiguousarray((U64.T @ A.astype(np.float64)).astype(self.dtype))
                approx = basis @ coef
                # The member's own error in its own units (see _basis), then converted to
                # the group's for the group's error (where a tiny member may vanish).
                own = self.amax[i] or 1.0
                R = (A.astype(np.float64) - approx.astype(np.float64)) * (1.0 / own)
                r2 = float(xp.sum(R * R))
                a2 = float(xp.sum((A.astype(np.float64) * (1.0 / own)) ** 2))
                coefs.append(coef)
                errs.append(math.sqrt(r2 / a2) if a2 > 0 else 0.0)
                ratio2 = (own / scale) ** 2
                res2 += r2 * ratio2
                tot2 += a2 * ratio2
            if all(e <= self.tol for e in errs):  # False for NaN, too
                cluster_error = math.sqrt(res2 / tot2) if tot2 > 0 else 0.0
                return _Group(list(mem), basis, coefs, k, errs, cluster_error)
            if k == kcap:
                break
            # Rare (rounding at the threshold): step up, faster for large ranks.
            k = min(kcap, k + max(1, k // 8))
        return None


def _tails(energy: np.ndarray) -> np.ndarray:
    """``tails[:, k] = sum_{j >= k} energy[:, j]`` for k = 0..d (the last column is 0)."""
    rev = np.cumsum(energy[:, ::-1], axis=1)[:, ::-1]
    return np.concatenate([rev, np.zeros((energy.shape[0], 1))], axis=1)
