"""Factorised replacements for ``nn.Linear``: low rank, low rank + sparse, Kronecker, shared basis.

Every layer keeps its factors as ``nn.Parameter``\\ s, so it trains (PiSSA-style: start from the
factors of the trained weight and fine-tune them), and applies them one after the other: the
dense ``(out, in)`` weight is never formed in ``forward``. ``to_dense()`` forms it on request.
All layers script with ``torch.jit.script`` and round-trip through ``state_dict``; their
constructors take only shapes, so a checkpoint loader builds an empty layer of the right shape
and calls ``load_state_dict``.

``n_params`` counts the numbers a layer stores, indices included (one per index), bias
included, and matches :func:`sparselin.linalg._factorize.lowrank_sparse_params` and
:func:`~sparselin.linalg._factorize.kronecker_params` plus the bias.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..linalg._factorize import lowrank_sparse_params

__all__ = [
    "KroneckerLinear",
    "LowRankLinear",
    "LowRankSparseLinear",
    "SharedBasis",
    "SharedBasisLinear",
]


def _factory(device: Any, dtype: Any) -> dict:
    return {"device": device, "dtype": dtype}


def _check_dim(value: Any, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def _bias_param(bias: bool, out_features: int, device: Any, dtype: Any) -> nn.Parameter | None:
    if not bias:
        return None
    return nn.Parameter(torch.zeros(out_features, device=device, dtype=dtype))


def _as_param(t: Tensor) -> nn.Parameter:
    return nn.Parameter(t.detach().clone())


# Set on a layer that replaced a GPT-2 style Conv1D (weight stored (in, out)): the compressed
# file then stores its factors in that layout, as the original checkpoint held the weight.
CONV1D_SOURCE = "_sparselin_conv1d_source"


def mark_conv1d_source(layer: nn.Module) -> nn.Module:
    """Record on ``layer`` that it replaces a Conv1D; returns ``layer``."""
    setattr(layer, CONV1D_SOURCE, True)
    return layer


def swap_module(model: nn.Module, name: str, new: nn.Module) -> nn.Module:
    """Put ``new`` wherever the submodule ``name`` of ``model`` is registered; return the old one.

    Every registration, not only ``name``: ``named_modules()`` lists a module held under two
    names (an alias) once, and replacing that name alone left the dense layer running under
    the other. ``new`` takes the old module's training mode.
    """
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, child)
    new.train(old.training)
    for _, holder in model.named_modules(remove_duplicate=False):
        # _modules, not named_children(): the latter yields each module once, under one name.
        for key, sub in list(holder._modules.items()):
            if sub is old:
                setattr(holder, key, new)
    return old


def replaces_conv1d(layer: nn.Module) -> bool:
    """Whether ``layer`` was made from (and replaces) a Conv1D layer."""
    return bool(getattr(layer, CONV1D_SOURCE, False))


class LowRankLinear(nn.Module):
    """``y = (x V^T) U^T + b``: a linear layer whose weight is the rank-``rank`` product ``U V``.

    Parameters
    ----------
    in_features, out_features : int
        Sizes as in ``nn.Linear``.
    rank : int
        Inner dimension of the factors (``>= 1``).
    bias : bool, default=True
        Whether the layer has an additive bias.
    device, dtype : optional
        Where and in which dtype the parameters are created.

    Attributes
    ----------
    U : nn.Parameter of shape (out_features, rank)
    V : nn.Parameter of shape (rank, in_features)
    bias : nn.Parameter of shape (out_features,) or None

    Examples
    --------
    >>> import torch
    >>> from sparselin.torch import LowRankLinear
    >>> dense = torch.nn.Linear(8, 6)
    >>> layer = LowRankLinear.from_dense(dense, rank=6)  # full rank: exact
    >>> x = torch.randn(4, 8)
    >>> bool(torch.allclose(layer(x), dense(x), atol=1e-5)), layer.n_params
    (True, 90)
    """

    __constants__ = ["in_features", "out_features", "rank"]
    # Python-only property: TorchScript would compile it otherwise.
    __jit_unused_properties__ = ["n_params"]

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.in_features = _check_dim(in_features, "in_features")
        self.out_features = _check_dim(out_features, "out_features")
        self.rank = _check_dim(rank, "rank")
        kw = _factory(device, dtype)
        self.U = nn.Parameter(torch.empty(out_features, rank, **kw))
        self.V = nn.Parameter(torch.empty(rank, in_features, **kw))
        self.bias = _bias_param(bias, out_features, device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Random factors for training from scratch: ``U V`` gets ``nn.Linear``'s scale."""
        bound = (1.0 / self.in_features) ** 0.5
        with torch.no_grad():
            nn.init.uniform_(self.V, -bound, bound)
            # Orthonormal-like columns of U keep the product at V's scale.
            nn.init.normal_(self.U, 0.0, self.rank**-0.5)
            if self.bias is not None:
                nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.nn.functional.linear(x, self.V)
        return torch.nn.functional.linear(h, self.U, self.bias)

    @classmethod
    def from_factors(cls, U: Tensor, V: Tensor, bias: Tensor | None = None) -> LowRankLinear:
        """The layer ``x -> (x V^T) U^T + bias`` holding copies of the given tensors."""
        if U.ndim != 2 or V.ndim != 2 or U.shape[1] != V.shape[0]:
            raise ValueError(
                f"U and V must be (out, rank) and (rank, in), got {tuple(U.shape)} and "
                f"{tuple(V.shape)}"
            )
        layer = cls(
            V.shape[1],
            U.shape[0],
            U.shape[1],
            bias=bias is not None,
            device=U.device,
            dtype=U.dtype,
        )
        layer.U = _as_param(U)
        layer.V = _as_param(V.to(U.dtype))
        if bias is not None:
            layer.bias = _as_param(bias.to(U.dtype))
        return layer

    @classmethod
    def from_dense(
        cls, layer: nn.Module, rank: int | None = None, tol: float | None = None, **kwargs: Any
    ) -> LowRankLinear:
        """``compress_linear(layer, rank=rank, tol=tol, method="svd", **kwargs)``."""
        from ._compress import compress_linear

        return compress_linear(layer, rank=rank, tol=tol, method="svd", **kwargs)

    def dense_weight(self) -> Tensor:
        """The ``(out_features, in_features)`` weight ``U @ V`` (formed on request)."""
        return self.U @ self.V

    def to_dense(self) -> nn.Linear:
        """An ``nn.Linear`` with weight ``U @ V`` and the same bias, dtype and device."""
        return _dense_linear(self.dense_weight(), self.bias)

    @property
    def n_params(self) -> int:
        """``rank * (in + out)`` plus the bias."""
        return self.rank * (self.in_features + self.out_features) + _bias_count(self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"rank={self.rank}, bias={self.bias is not None}"
        )


def _bias_count(bias: Tensor | None) -> int:
    return 0 if bias is None else int(bias.numel())


def _dense_linear(weight: Tensor, bias: Tensor | None) -> nn.Linear:
    out_f, in_f = weight.shape
    dense = nn.Linear(in_f, out_f, bias=bias is not None, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        dense.weight.copy_(weight)
        if bias is not None:
            dense.bias.copy_(bias)
    return dense


class LowRankSparseLinear(nn.Module):
    """``y = (x V^T) U^T + x S^T + b`` with ``S`` sparse: low rank plus a sparse residual.

    ``S`` has two parts, either of which may be empty: ``n_entries`` unstructured entries in
    CSR form (buffers ``indptr`` ``(out + 1,)`` and ``indices`` ``(n_entries,)`` of column
    indices, parameter ``values`` ``(n_entries,)``), and ``n_columns`` whole input channels
    (buffer ``columns`` ``(n_columns,)``, parameter ``column_values`` ``(out, n_columns)``), as
    LOST's channel-wise residual. The sparsity pattern is fixed; the values train.

    Parameters
    ----------
    in_features, out_features, rank : int
    n_entries : int, default=0
        Number of unstructured residual entries.
    n_columns : int, default=0
        Number of dense residual columns (input channels).
    bias : bool, default=True
    device, dtype : optional

    Examples
    --------
    >>> import torch
    >>> from sparselin.torch import compress_linear
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> dense = torch.nn.Linear(32, 16)
    >>> layer = compress_linear(dense, rank=4, method="lowrank_sparse", n_entries=40)
    >>> type(layer).__name__, layer.rank, layer.n_entries
    ('LowRankSparseLinear', 4, 40)
    """

    __constants__ = ["in_features", "out_features", "rank", "n_entries", "n_columns"]
    # Python-only property: TorchScript would compile it otherwise.
    __jit_unused_properties__ = ["n_params"]

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        n_entries: int = 0,
        n_columns: int = 0,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.in_features = _check_dim(in_features, "in_features")
        self.out_features = _check_dim(out_features, "out_features")
        self.rank = _check_dim(rank, "rank")
        self.n_entries = _check_dim(n_entries, "n_entries", 0)
        self.n_columns = _check_dim(n_columns, "n_columns", 0)
        if n_entries > in_features * out_features:
            raise ValueError(f"n_entries must be <= in * out, got {n_entries}")
        if n_columns > in_features:
            raise ValueError(f"n_columns must be <= in_features, got {n_columns}")
        kw = _factory(device, dtype)
        self.U = nn.Parameter(torch.zeros(out_features, rank, **kw))
        self.V = nn.Parameter(torch.zeros(rank, in_features, **kw))
        self.values = nn.Parameter(torch.zeros(n_entries, **kw))
        self.column_values = nn.Parameter(torch.zeros(out_features, n_columns, **kw))
        self.register_buffer(
            "indptr", torch.zeros(out_features + 1, dtype=torch.int64, device=device)
        )
        self.register_buffer("indices", torch.zeros(n_entries, dtype=torch.int64, device=device))
        self.register_buffer("columns", torch.zeros(n_columns, dtype=torch.int64, device=device))
        # Row of each entry, derived from indptr (not saved: the CSR arrays are the format).
        self.register_buffer(
            "_rows", torch.zeros(n_entries, dtype=torch.int64, device=device), persistent=False
        )
        self.bias = _bias_param(bias, out_features, device, dtype)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._refresh_rows()

    def _refresh_rows(self) -> None:
        counts = self.indptr[1:] - self.indptr[:-1]
        rows = torch.repeat_interleave(
            torch.arange(self.out_features, device=self.indptr.device), counts
        )
        self._rows = rows

    def forward(self, x: Tensor) -> Tensor:
        h = torch.nn.functional.linear(x, self.V)
        y = torch.nn.functional.linear(h, self.U, self.bias)
        if self.n_columns > 0:
            y = y + torch.nn.functional.linear(
                x.index_select(-1, self.columns), self.column_values
            )
        if self.n_entries > 0:
            # One product per stored entry: O(batch * nnz) work, the cost of the sparse term,
            # and a differentiable scatter into the rows (any dtype, any device).
            contrib = x.index_select(-1, self.indices) * self.values
            y = y.index_add(-1, self._rows, contrib.to(y.dtype))
        return y

    @classmethod
    def from_factors(
        cls,
        U: Tensor,
        V: Tensor,
        *,
        indptr: Tensor | None = None,
        indices: Tensor | None = None,
        values: Tensor | None = None,
        columns: Tensor | None = None,
        column_values: Tensor | None = None,
        bias: Tensor | None = None,
    ) -> LowRankSparseLinear:
        """The layer holding copies of the given factors and residual (CSR and/or columns)."""
        out_f, rank = U.shape
        in_f = V.shape[1]
        n_entries = 0 if values is None else int(values.numel())
        n_columns = 0 if columns is None else int(columns.numel())
        layer = cls(
            in_f,
            out_f,
            rank,
            n_entries,
            n_columns,
            bias=bias is not None,
            device=U.device,
            dtype=U.dtype,
        )
        dt = U.dtype
        with torch.no_grad():
            layer.U.copy_(U)
            layer.V.copy_(V.to(dt))
            if n_entries:
                if indptr is None or indices is None:
                    raise ValueError("values need indptr and indices")
                if tuple(indptr.shape) != (out_f + 1,) or tuple(indices.shape) != (n_entries,):
                    raise ValueError(
                        f"indptr must be ({out_f + 1},) and indices ({n_entries},), got "
                        f"{tuple(indptr.shape)} and {tuple(indices.shape)}"
                    )
                layer.indptr.copy_(indptr)
                layer.indices.copy_(indices)
                layer.values.copy_(values.to(dt))
            if n_columns:
                if column_values is None or tuple(column_values.shape) != (out_f, n_columns):
                    raise ValueError(f"column_values must be ({out_f}, {n_columns})")
                layer.columns.copy_(columns)
                layer.column_values.copy_(column_values.to(dt))
            if bias is not None:
                layer.bias.copy_(bias.to(dt))
        layer._refresh_rows()
        return layer

    @classmethod
    def from_dense(
        cls, layer: nn.Module, rank: int | None = None, tol: float | None = None, **kwargs: Any
    ) -> LowRankSparseLinear:
        """``compress_linear(layer, rank=rank, tol=tol, method="lowrank_sparse", **kwargs)``."""
        from ._compress import compress_linear

        return compress_linear(layer, rank=rank, tol=tol, method="lowrank_sparse", **kwargs)

    def sparse_weight(self) -> Tensor:
        """The dense ``(out, in)`` residual ``S`` (formed on request)."""
        S = torch.zeros(
            self.out_features, self.in_features, dtype=self.U.dtype, device=self.U.device
        )
        if self.n_entries:
            S = S.index_put((self._rows, self.indices), self.values, accumulate=True)
        if self.n_columns:
            S = S.index_add(1, self.columns, self.column_values)
        return S

    def dense_weight(self) -> Tensor:
        """``U @ V + S`` (formed on request)."""
        return self.U @ self.V + self.sparse_weight()

    def to_dense(self) -> nn.Linear:
        """An ``nn.Linear`` with weight ``U @ V + S`` and the same bias."""
        return _dense_linear(self.dense_weight(), self.bias)

    @property
    def n_params(self) -> int:
        """Factors, residual values with their indices, the row pointer when entries exist,
        and the bias (see ``lowrank_sparse_params``)."""
        return lowrank_sparse_params(
            self.out_features, self.in_features, self.rank, self.n_entries, self.n_columns
        ) + _bias_count(self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"rank={self.rank}, n_entries={self.n_entries}, n_columns={self.n_columns}, "
            f"bias={self.bias is not None}"
        )


class KroneckerLinear(nn.Module):
    """``y = W x + b`` with ``W = sum_i kron(A_i, B_i)``, applied without forming ``W``.

    With ``x`` reshaped row-major to ``X`` of shape ``(n1, n2)``, ``W x`` is
    ``sum_i A_i X B_i^T`` flattened row-major (``vec(B_i X A_i^T)`` in column-major terms):
    ``r (n1 n2 m2 + n1 m1 m2)`` multiplications per input instead of ``m n``.

    Parameters
    ----------
    in_features, out_features, rank : int
    shape_a : (int, int)
        ``(m1, n1)``, the shape of each ``A_i``; ``m1`` must divide ``out_features`` and ``n1``
        ``in_features``. ``B_i`` is ``(out_features // m1, in_features // n1)``.
    bias : bool, default=True
    device, dtype : optional

    Attributes
    ----------
    A : nn.Parameter of shape (rank, m1, n1)
    B : nn.Parameter of shape (rank, m2, n2)

    Examples
    --------
    >>> import torch
    >>> from sparselin.torch import KroneckerLinear
    >>> A, B = torch.randn(2, 3, 4), torch.randn(2, 5, 2)
    >>> layer = KroneckerLinear.from_factors(A, B)
    >>> W = torch.kron(A[0], B[0]) + torch.kron(A[1], B[1])
    >>> x = torch.randn(7, 8)
    >>> bool(torch.allclose(layer(x), x @ W.T, atol=1e-5)), layer.n_params
    (True, 44)
    """

    __constants__ = ["in_features", "out_features", "rank", "m1", "n1", "m2", "n2"]
    # Python-only property: TorchScript would compile it otherwise.
    __jit_unused_properties__ = ["n_params"]

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        shape_a: tuple[int, int],
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.in_features = _check_dim(in_features, "in_features")
        self.out_features = _check_dim(out_features, "out_features")
        self.rank = _check_dim(rank, "rank")
        if not isinstance(shape_a, (tuple, list)) or len(shape_a) != 2:
            raise TypeError(f"shape_a must be a pair (m1, n1), got {shape_a!r}")
        m1 = _check_dim(shape_a[0], "shape_a[0]")
        n1 = _check_dim(shape_a[1], "shape_a[1]")
        if out_features % m1 or in_features % n1:
            raise ValueError(
                f"shape_a=({m1}, {n1}) must divide (out_features, in_features)="
                f"({out_features}, {in_features})"
            )
        self.m1, self.n1 = m1, n1
        self.m2, self.n2 = out_features // m1, in_features // n1
        kw = _factory(device, dtype)
        self.A = nn.Parameter(torch.zeros(rank, m1, n1, **kw))
        self.B = nn.Parameter(torch.zeros(rank, self.m2, self.n2, **kw))
        self.bias = _bias_param(bias, out_features, device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        X = x.unflatten(-1, (self.n1, self.n2))
        # T[.., r, c, q] = sum_d X[.., c, d] B[r, q, d], then sum over r and c with A[r, a, c].
        T = torch.einsum("...cd,rqd->...rcq", X, self.B)
        y = torch.einsum("rac,...rcq->...aq", self.A, T).flatten(-2)
        if self.bias is not None:
            y = y + self.bias
        return y

    def adjoint(self, y: Tensor) -> Tensor:
        """``W^T y`` without forming ``W`` (used by the dot test and for inspection)."""
        Y = y.unflatten(-1, (self.m1, self.m2))
        T = torch.einsum("...aq,rqd->...rad", Y, self.B)
        return torch.einsum("rac,...rad->...cd", self.A, T).flatten(-2)

    @classmethod
    def from_factors(cls, A: Tensor, B: Tensor, bias: Tensor | None = None) -> KroneckerLinear:
        """The layer ``sum_i kron(A[i], B[i])`` holding copies of ``A`` ``(r, m1, n1)`` and
        ``B`` ``(r, m2, n2)``."""
        if A.ndim != 3 or B.ndim != 3 or A.shape[0] != B.shape[0]:
            raise ValueError(
                f"A and B must be (r, m1, n1) and (r, m2, n2), got {tuple(A.shape)} and "
                f"{tuple(B.shape)}"
            )
        r, m1, n1 = A.shape
        _, m2, n2 = B.shape
        layer = cls(
            n1 * n2, m1 * m2, r, (m1, n1), bias=bias is not None, device=A.device, dtype=A.dtype
        )
        with torch.no_grad():
            layer.A.copy_(A)
            layer.B.copy_(B.to(A.dtype))
            if bias is not None:
                layer.bias.copy_(bias.to(A.dtype))
        return layer

    @classmethod
    def from_dense(
        cls, layer: nn.Module, rank: int | None = None, tol: float | None = None, **kwargs: Any
    ) -> KroneckerLinear:
        """``compress_linear(layer, rank=rank, tol=tol, method="kronecker", **kwargs)``."""
        from ._compress import compress_linear

        return compress_linear(layer, rank=rank, tol=tol, method="kronecker", **kwargs)

    def dense_weight(self) -> Tensor:
        """``sum_i kron(A_i, B_i)`` (formed on request)."""
        W = torch.einsum("rac,rqd->aqcd", self.A, self.B)
        return W.reshape(self.out_features, self.in_features)

    def to_dense(self) -> nn.Linear:
        """An ``nn.Linear`` with the dense weight and the same bias."""
        return _dense_linear(self.dense_weight(), self.bias)

    @property
    def n_params(self) -> int:
        """``rank (m1 n1 + m2 n2)`` plus the bias."""
        return self.rank * (self.m1 * self.n1 + self.m2 * self.n2) + _bias_count(self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"rank={self.rank}, shape_a=({self.m1}, {self.n1}), "
            f"bias={self.bias is not None}"
        )


class SharedBasis(nn.Module):
    """One input-side basis ``(rank, in_features)`` shared by several :class:`SharedBasisLinear`.

    Registered as a submodule of every layer that uses it, so it appears once in
    ``model.parameters()`` (PyTorch de-duplicates shared parameters) and under each layer's
    name in ``state_dict``; loading a state dict writes the same tensor into it each time.
    """

    __constants__ = ["in_features", "rank"]
    # Python-only property: TorchScript would compile it otherwise.
    __jit_unused_properties__ = ["n_params"]

    def __init__(self, in_features: int, rank: int, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.in_features = _check_dim(in_features, "in_features")
        self.rank = _check_dim(rank, "rank")
        self.basis = nn.Parameter(torch.zeros(rank, in_features, **_factory(device, dtype)))

    def forward(self, x: Tensor) -> Tensor:
        return torch.nn.functional.linear(x, self.basis)

    @property
    def n_params(self) -> int:
        return self.rank * self.in_features


class SharedBasisLinear(nn.Module):
    """``y = (x B^T) C^T + b`` where the basis ``B`` is shared with other layers.

    Parameters
    ----------
    basis : SharedBasis
        The shared module holding ``B`` ``(rank, in_features)``.
    out_features : int
    bias : bool, default=True
    device, dtype : optional

    Attributes
    ----------
    coefficients : nn.Parameter of shape (out_features, rank)

    Examples
    --------
    >>> import torch
    >>> from sparselin.torch import compress_shared
    >>> q, k, v = (torch.nn.Linear(16, 16) for _ in range(3))
    >>> layers = compress_shared([q, k, v], rank=16)  # full rank: exact
    >>> x = torch.randn(5, 16)
    >>> all(torch.allclose(new(x), old(x), atol=1e-4) for new, old in zip(layers, [q, k, v]))
    True
    >>> layers[0].basis is layers[1].basis
    True
    """

    __constants__ = ["in_features", "out_features", "rank"]
    # Python-only property: TorchScript would compile it otherwise.
    __jit_unused_properties__ = ["n_params"]

    def __init__(
        self,
        basis: SharedBasis,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if not isinstance(basis, SharedBasis):
            raise TypeError(f"basis must be a SharedBasis, got {type(basis).__name__}")
        self.basis = basis
        self.in_features = basis.in_features
        self.out_features = _check_dim(out_features, "out_features")
        self.rank = basis.rank
        if dtype is None:
            dtype = basis.basis.dtype
        if device is None:
            device = basis.basis.device
        self.coefficients = nn.Parameter(
            torch.zeros(out_features, basis.rank, device=device, dtype=dtype)
        )
        self.bias = _bias_param(bias, out_features, device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        return torch.nn.functional.linear(self.basis(x), self.coefficients, self.bias)

    @classmethod
    def group(
        cls,
        basis: Tensor,
        coefficients: list[Tensor],
        biases: list[Tensor | None] | None = None,
    ) -> list[SharedBasisLinear]:
        """Layers ``x -> (x basis^T) coefficients[l]^T + biases[l]`` sharing one basis module."""
        if basis.ndim != 2:
            raise ValueError(f"basis must be (rank, in_features), got {tuple(basis.shape)}")
        k, n = basis.shape
        shared = SharedBasis(n, k, device=basis.device, dtype=basis.dtype)
        with torch.no_grad():
            shared.basis.copy_(basis)
        if biases is None:
            biases = [None] * len(coefficients)
        if len(biases) != len(coefficients):
            raise ValueError("biases must have one entry per coefficient matrix")
        layers = []
        for C, b in zip(coefficients, biases, strict=True):
            if C.ndim != 2 or C.shape[1] != k:
                raise ValueError(f"each coefficient must be (out, {k}), got {tuple(C.shape)}")
            layer = cls(shared, C.shape[0], bias=b is not None)
            with torch.no_grad():
                layer.coefficients.copy_(C.to(basis.dtype))
                if b is not None:
                    layer.bias.copy_(b.to(basis.dtype))
            layers.append(layer)
        return layers

    @classmethod
    def from_dense(
        cls,
        layers: list[nn.Module],
        rank: int | None = None,
        tol: float | None = None,
        **kwargs: Any,
    ) -> list[SharedBasisLinear]:
        """``compress_shared(layers, rank=rank, tol=tol, **kwargs)``: one shared basis."""
        from ._compress import compress_shared

        return compress_shared(layers, rank=rank, tol=tol, **kwargs)

    def dense_weight(self) -> Tensor:
        """``coefficients @ basis`` (formed on request)."""
        return self.coefficients @ self.basis.basis

    def to_dense(self) -> nn.Linear:
        """An ``nn.Linear`` with the dense weight and the same bias."""
        return _dense_linear(self.dense_weight(), self.bias)

    @property
    def n_params(self) -> int:
        """This layer's own parameters (coefficients, bias); the basis is counted once, by
        :attr:`SharedBasis.n_params`."""
        return self.out_features * self.rank + _bias_count(self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"rank={self.rank} (shared), bias={self.bias is not None}"
        )
