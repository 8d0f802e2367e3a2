"""The GPU side of the transforms, as far as a machine without a GPU can check it.

* ``cuda/fwht.cu`` compiles with NVRTC (CuPy's compiler; a wheel, no device needed).
* The host code that launches the kernels is run with NumPy stand-ins that do what each
  kernel is specified to do (tile: every stage inside each tile, scaled; strided: RAD-point
  transforms across stride h; factor: A_m across the chunks), so that the tiling, pass
  order, strides and launch sizes are checked against the reference transform.
* The CuPy array code (the fallback when the kernels do not compile) runs on the NumPy-backed
  fake CuPy of tests/fake_gpu.
* On a real GPU (``pytest -m gpu``), the kernels are compared with the CPU transform.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

from sparselin import _cuda
from sparselin.transforms import _fwht, fwht, hadamard
from sparselin.transforms._hadamard_orders import hadamard_factor

FAKE = Path(__file__).resolve().parents[1] / "fake_gpu"


@pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() != "x86_64",
    reason="the nvidia-cuda-nvrtc wheel exists for Linux x86-64 only",
)
def test_fwht_cu_compiles_with_nvrtc():
    import ctypes

    nvrtc = pytest.importorskip("nvidia.cuda_nvrtc")
    lib_dir = os.path.join(next(iter(nvrtc.__path__)), "lib")
    lib = ctypes.CDLL(os.path.join(lib_dir, "libnvrtc.so.12"))
    prog = ctypes.c_void_p()
    src = _cuda.cuda_source("fwht.cu").encode()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), src, b"fwht.cu", 0, None, None) == 0
    for expr in _fwht.GPU_EXPRESSIONS:
        assert lib.nvrtcAddNameExpression(prog, expr.encode()) == 0
    opts = [o.encode() for o in _cuda.NVRTC_OPTIONS] + [b"-arch=compute_80"]
    status = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    assert status == 0, log.value.decode()
    for expr in _fwht.GPU_EXPRESSIONS:
        lowered = ctypes.c_char_p()
        assert lib.nvrtcGetLoweredName(prog, expr.encode(), ctypes.byref(lowered)) == 0
        assert expr.split("<")[0].encode() in lowered.value
    lib.nvrtcDestroyProgram(ctypes.byref(prog))


class _Kernel:
    """A NumPy stand-in for one compiled kernel: checks the launch, then does its job."""

    def __init__(self, kind, launches):
        self.kind = kind
        self.launches = launches

    def __call__(self, grid, block, args, shared_mem=0):
        self.launches.append(self.kind)
        assert 1 <= block[0] <= 1024
        data = args[0]
        if self.kind == "tile":
            log_tile, scale = int(args[1]), float(args[2])
            tile = 1 << log_tile
            assert grid[0] * tile == data.size and shared_mem == tile * data.itemsize
            assert shared_mem <= 48 * 1024  # the default dynamic shared memory limit
            tiles = data.reshape(-1, tile)
            # The kernel's contract is the tile's transform; the CPU transform serves here.
            tiles[...] = fwht(tiles * tiles.real.dtype.type(scale), axis=-1)
        elif self.kind == "factor":
            n_rows, K, m, A, s = int(args[1]), int(args[2]), int(args[3]), args[4], float(args[5])
            assert grid[0] * block[0] >= n_rows * K and A.dtype == np.int8
            blocks = data.reshape(n_rows, m, K)
            blocks[...] = (A.astype(blocks.real.dtype) @ blocks) * s
        else:
            rad = self.kind
            units, K, h = int(args[1]), int(args[2]), int(args[3])
            assert units == data.size // rad and grid[0] * block[0] >= units
            groups = data.reshape(-1, K // (rad * h), rad, h)
            Hr = scipy.linalg.hadamard(rad).astype(groups.real.dtype)
            groups[...] = np.einsum("st,rgth->rgsh", Hr, groups)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("N", [2, 8, 1 << 11, 1 << 13, 1 << 16, 12, 12 * 4096, 28 * 1024])
def test_kernel_launch_plan_with_numpy_stand_ins(monkeypatch, dtype, N, rng):
    launches = []
    kernels = {k: _Kernel(k, launches) for k in ("tile", "factor", 2, 4, 8)}
    monkeypatch.setattr(_fwht, "_gpu_kernels", lambda dt: kernels)
    rows = rng.standard_normal((3, N)).astype(dtype)
    x = rows.copy()
    split = _fwht.factor_length(N)
    _fwht._transform_gpu(rows, *split, 1 / np.sqrt(N), None, np)
    expected = fwht(x, normalize="ortho")
    tol = 1e-4 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-10
    np.testing.assert_allclose(rows, expected, atol=tol * np.abs(expected).max())
    # Long rows need strided passes over global memory; short ones are one tile launch.
    itemsize = np.dtype(dtype).itemsize
    K = N // split[0]
    assert (launches[0] == "tile") == (K > 1)
    assert any(isinstance(k, int) for k in launches) == (K * itemsize > _fwht._GPU_TILE_BYTES)
    assert ("factor" in launches) == (split[0] > 1)


FAKE_SCRIPT = textwrap.dedent(
    """
    import warnings
    import numpy as np
    import cupy as cp
    assert cp.__version__ == "0.0-fake"
    from sparselin.transforms import fwht, hadamard, sparse_wht

    rng = np.random.default_rng(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for dtype in (np.float32, np.float64, np.complex64, np.complex128):
            for shape, axis in (((3, 64), 1), ((16, 5), 0), ((2, 12 * 8), 1), ((1024,), 0)):
                x = rng.standard_normal(shape).astype(dtype)
                for order in ("natural", "sequency", "dyadic"):
                    if shape[axis] % 3 == 0 and order != "natural":
                        continue
                    for normalize in (None, "ortho"):
                        y = fwht(cp.asarray(x), axis=axis, order=order, normalize=normalize)
                        assert isinstance(y, cp.ndarray) and y.dtype == dtype
                        ref = fwht(x, axis=axis, order=order, normalize=normalize)
                        tol = 1e-4 if dtype in (np.float32, np.complex64) else 1e-10
                        np.testing.assert_allclose(y.get(), ref, atol=tol * np.abs(ref).max())
        # out= on the device, and in place.
        xd = cp.asarray(rng.standard_normal((4, 32)))
        ref = fwht(xd.get())
        out = cp.empty_like(xd)
        assert fwht(xd, out=out) is out
        np.testing.assert_allclose(out.get(), ref, atol=1e-10)
        fwht(xd, out=xd)
        np.testing.assert_allclose(xd.get(), ref, atol=1e-10)
    assert any("could not be compiled" in str(w.message) for w in caught)
    try:
        fwht(np.ones(8), out=cp.empty(8))
    except TypeError as exc:
        assert "same device" in str(exc)
    else:
        raise AssertionError("out on another device must raise")

    # sparse_wht samples a device signal on the device.
    X = np.zeros(1 << 12)
    X[[5, 900, 3001]] = [1.0, -2.0, 0.5]
    spec = sparse_wht(cp.asarray(fwht(X, normalize="forward")), 12, sparsity=3, noise=0.0,
                      random_state=0)
    assert spec.success and spec.indices.tolist() == [5, 900, 3001]
    np.testing.assert_allclose(spec.values, [1.0, -2.0, 0.5])
    print("FAKE GPU TRANSFORMS OK")
    """
)


def test_cupy_array_code_on_the_fake_cupy(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(FAKE), env.get("PYTHONPATH", "")])
    script = tmp_path / "fake_gpu_transforms.py"
    script.write_text(FAKE_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "FAKE GPU TRANSFORMS OK" in proc.stdout


# ------------------------------------------------------------------ on a real GPU only


@pytest.fixture(scope="module")
def cp():
    return pytest.importorskip("cupy")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize(
    ("shape", "axis"),
    [
        ((1024, 1 << 10), 1),
        ((64, 1 << 12), 1),
        ((8, 1 << 15), 1),
        ((1, 1 << 20), 1),
        ((1 << 11, 7), 0),
        ((5, 1), 1),
        ((3, 28 * 1024), 1),
        ((2, 12), 1),
        ((4, 20 * 4096), 1),
    ],
)
def test_gpu_kernels_match_cpu(cp, dtype, shape, axis):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.standard_normal(shape)
    x = x.astype(dtype)
    for normalize in (None, "ortho"):
        y = fwht(cp.asarray(x), axis=axis, normalize=normalize)
        assert y.dtype == dtype and _fwht._GPU_STATE["fwht"] is None  # the kernels ran
        ref = fwht(x, axis=axis, normalize=normalize)
        # Dao's tolerances for fp32 (rtol 3e-4, atol 3e-3 on unit-scale data).
        rtol = 3e-4 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-10
        np.testing.assert_allclose(cp.asnumpy(y), ref, rtol=rtol, atol=rtol * np.abs(ref).max())


@pytest.mark.gpu
@pytest.mark.parametrize("order", ["sequency", "dyadic"])
def test_gpu_orderings(cp, order):
    x = np.random.default_rng(1).standard_normal((6, 256))
    y = fwht(cp.asarray(x), order=order)
    np.testing.assert_allclose(cp.asnumpy(y), x @ hadamard(256, order).T, atol=1e-9)


@pytest.mark.gpu
def test_gpu_factor_matrix_is_the_cpu_one(cp):
    x = np.eye(28)
    y = cp.asnumpy(fwht(cp.asarray(x), axis=0))
    np.testing.assert_array_equal(y, hadamard_factor(28).astype(float))
