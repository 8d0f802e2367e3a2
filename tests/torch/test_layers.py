"""The factorised layers: forward equals the dense layer built from the factors, gradients,
state_dict round-trip, TorchScript, and the Kronecker operator's adjoint."""

from __future__ import annotations

import io

import pytest

torch = pytest.importorskip("torch")

from sparselin.torch import (  # noqa: E402
    KroneckerLinear,
    LowRankLinear,
    LowRankSparseLinear,
    SharedBasis,
    SharedBasisLinear,
)

DTYPES = [torch.float32, torch.float64]


def _make(kind, dtype, bias=True):
    g = torch.Generator().manual_seed(0)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    b = r(12) if bias else None
    if kind == "lowrank":
        return LowRankLinear.from_factors(r(12, 3), r(3, 10), b)
    if kind == "lowrank_sparse":
        # Rows 0 and 2 hold entries, row 1 none; two dense columns.
        indptr = torch.tensor([0, 2, 2] + [3] * 10)
        indices = torch.tensor([1, 7, 4])
        return LowRankSparseLinear.from_factors(
            r(12, 3),
            r(3, 10),
            indptr=indptr,
            indices=indices,
            values=r(3),
            columns=torch.tensor([0, 9]),
            column_values=r(12, 2),
            bias=b,
        )
    if kind == "kronecker":
        return KroneckerLinear.from_factors(r(2, 4, 5), r(2, 3, 2), b)
    layers = SharedBasisLinear.group(r(4, 10), [r(12, 4), r(5, 4)], [b, None])
    return layers[0]


KINDS = ["lowrank", "lowrank_sparse", "kronecker", "shared"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bias", [True, False])
def test_forward_equals_dense_layer(kind, dtype, bias):
    layer = _make(kind, dtype, bias)
    dense = layer.to_dense()
    assert isinstance(dense, torch.nn.Linear) and dense.weight.dtype == dtype
    for shape in [(10,), (7, 10), (2, 3, 10)]:
        x = torch.randn(*shape, dtype=dtype)
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        torch.testing.assert_close(layer(x), dense(x), rtol=tol, atol=tol)
        assert layer(x).shape == (*shape[:-1], 12)


def test_kronecker_dense_weight_is_kron_sum():
    layer = _make("kronecker", torch.float64)
    W = sum(torch.kron(layer.A[i], layer.B[i]) for i in range(2))
    torch.testing.assert_close(layer.dense_weight(), W)


def test_lowrank_sparse_residual_layout():
    layer = _make("lowrank_sparse", torch.float64)
    S = layer.sparse_weight()
    expected = torch.zeros(12, 10, dtype=torch.float64)
    expected[0, 1], expected[0, 7], expected[2, 4] = layer.values.detach()
    expected[:, [0, 9]] += layer.column_values.detach()
    torch.testing.assert_close(S.detach(), expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kronecker_dot_test(dtype):
    """<W x, y> = <x, W^T y> without forming W."""
    layer = _make("kronecker", dtype)
    x = torch.randn(5, 10, dtype=dtype)
    y = torch.randn(5, 12, dtype=dtype)
    with torch.no_grad():
        lhs = ((layer(x) - layer.bias) * y).sum()
        rhs = (x * layer.adjoint(y)).sum()
    assert float(abs(lhs - rhs)) <= (1e-4 if dtype == torch.float32 else 1e-11) * float(abs(lhs))
    torch.testing.assert_close(layer.adjoint(y), y @ layer.dense_weight())


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_flow_and_training_lowers_loss(kind):
    layer = _make(kind, torch.float64)
    target = torch.nn.Linear(10, 12).double()
    x = torch.randn(64, 10, dtype=torch.float64)
    with torch.no_grad():
        y = target(x)
    out = layer(x)
    loss = ((out - y) ** 2).mean()
    loss.backward()
    for name, p in layer.named_parameters():
        if p.numel():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, name
    # Numerical gradient check of the factored forward (float64).
    names = [n for n, p in layer.named_parameters() if p.numel()]
    start = [
        dict(layer.named_parameters())[n].detach().clone().requires_grad_(True) for n in names
    ]

    def call(*ps):
        return torch.func.functional_call(layer, dict(zip(names, ps, strict=True)), (x[:3],))

    assert torch.autograd.gradcheck(call, tuple(start))
    opt = torch.optim.SGD(layer.parameters(), lr=0.01)
    first = None
    for _ in range(30):
        opt.zero_grad()
        loss = ((layer(x) - y) ** 2).mean()
        first = loss.item() if first is None else first
        loss.backward()
        opt.step()
    assert loss.item() < first


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_round_trip_into_an_empty_layer(kind):
    layer = _make(kind, torch.float32)
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf)
    if kind == "lowrank":
        empty = LowRankLinear(10, 12, 3)
    elif kind == "lowrank_sparse":
        empty = LowRankSparseLinear(10, 12, 3, n_entries=3, n_columns=2)
    elif kind == "kronecker":
        empty = KroneckerLinear(10, 12, 2, (4, 5))
    else:
        empty = SharedBasisLinear(SharedBasis(10, 4), 12)
    empty.load_state_dict(state)
    x = torch.randn(6, 10)
    torch.testing.assert_close(empty(x), layer(x))
    assert empty.n_params == layer.n_params


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.parametrize("kind", KINDS)
def test_torchscript(kind):
    layer = _make(kind, torch.float32)
    scripted = torch.jit.script(layer)
    x = torch.randn(2, 4, 10)
    torch.testing.assert_close(scripted(x), layer(x))
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    buf.seek(0)
    torch.testing.assert_close(torch.jit.load(buf)(x), layer(x))


def test_shared_basis_is_one_parameter():
    g = torch.Generator().manual_seed(1)
    basis = torch.randn(4, 10, generator=g)
    a, b = SharedBasisLinear.group(basis, [torch.randn(6, 4), torch.randn(3, 4)])
    model = torch.nn.ModuleDict({"a": a, "b": b})
    assert a.basis is b.basis
    assert sum(p.numel() for p in model.parameters()) == 40 + 24 + 12
    assert a.n_params + b.n_params + a.basis.n_params == 40 + 24 + 12
    (a(torch.randn(2, 10)).sum() + b(torch.randn(2, 10)).sum()).backward()
    assert a.basis.basis.grad is not None
    state = model.state_dict()
    assert "a.basis.basis" in state and "b.basis.basis" in state


def test_n_params():
    assert LowRankLinear(10, 12, 3).n_params == 3 * 22 + 12
    assert LowRankLinear(10, 12, 3, bias=False).n_params == 66
    assert LowRankSparseLinear(10, 12, 3, 5, 2).n_params == 66 + 10 + 13 + 2 * 13 + 12
    assert KroneckerLinear(10, 12, 2, (4, 5)).n_params == 2 * (20 + 6) + 12


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: LowRankLinear(10, 12, 0), ValueError, "rank"),
        (lambda: LowRankLinear(10, 12, 2.5), TypeError, "rank"),
        (lambda: LowRankLinear(0, 12, 2), ValueError, "in_features"),
        (lambda: LowRankSparseLinear(10, 12, 2, n_entries=-1), ValueError, "n_entries"),
        (lambda: LowRankSparseLinear(10, 12, 2, n_columns=11), ValueError, "n_columns"),
        (lambda: KroneckerLinear(10, 12, 2, (5, 3)), ValueError, "shape_a"),
        (lambda: KroneckerLinear(10, 12, 2, 4), TypeError, "shape_a"),
        (lambda: SharedBasisLinear(torch.zeros(3, 4), 5), TypeError, "SharedBasis"),
        (
            lambda: LowRankLinear.from_factors(torch.zeros(3, 2), torch.zeros(3, 4)),
            ValueError,
            "U and V",
        ),
        (
            lambda: KroneckerLinear.from_factors(torch.zeros(2, 3, 4), torch.zeros(3, 2, 2)),
            ValueError,
            "A and B",
        ),
    ],
)
def test_bad_construction(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_missing_torch_names_the_extra():
    """Without torch, importing sparselin.torch says which extra to install."""
    import subprocess
    import sys

    # A finder that refuses torch (a None entry in sys.modules would trip SciPy's own checks).
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('No module named torch')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import sparselin\n"
        "try:\n"
        "    import sparselin.torch\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "sparselin[torch]" in out.stdout


def test_from_dense_helpers():
    torch.manual_seed(3)
    dense = torch.nn.Linear(12, 8)
    x = torch.randn(4, 12)
    full = [
        LowRankLinear.from_dense(dense, rank=8),
        LowRankSparseLinear.from_dense(dense, rank=8, n_entries=0),
        KroneckerLinear.from_dense(dense, rank=6, shape_a=(2, 3)),  # full: min(2 * 3, 4 * 4)
        SharedBasisLinear.from_dense([dense, dense], rank=8)[0],
    ]
    for layer in full:
        torch.testing.assert_close(layer(x), dense(x), rtol=1e-4, atol=1e-4)
