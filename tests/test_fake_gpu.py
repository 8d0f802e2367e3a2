"""sparselin's CuPy code paths, run on the CPU against a NumPy-backed stand-in for CuPy.

tests/fake_gpu/cupy behaves like a device library where it matters: its arrays refuse
implicit conversion to NumPy and refuse to mix with NumPy arrays, and raw CUDA kernels do
not compile. So every ``xp``-generic path that the GPU takes runs here, and a stray NumPy
call on device data fails as it would on a GPU. It does not replace ``pytest -m gpu`` on a
real device (numerics, cuBLAS/cuSOLVER, the CUDA kernel), which tests/gpu/ does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

FAKE = Path(__file__).resolve().parent / "fake_gpu"

SCRIPT = textwrap.dedent(
    """
    import warnings
    import numpy as np
    import cupy as cp
    import scipy.sparse as sp
    from scipy.sparse.linalg import aslinearoperator
    assert cp.__version__ == "0.0-fake"
    import sparselin
    from sparselin import svd_update, truncated_svd
    from sparselin._array import gpu_available, namespace
    from sparselin.datasets import make_low_rank_matrix

    assert gpu_available() and namespace(cp.asarray(np.ones(2))) is cp
    try:
        np.asarray(cp.asarray(np.ones(2)))
    except TypeError:
        pass
    else:
        raise AssertionError("the fake must refuse implicit conversion")
    warnings.simplefilter("ignore", RuntimeWarning)  # kernel and svds fallbacks announce

    def check(A, **kw):
        U, s, Vt = truncated_svd(cp.asarray(A), random_state=0, **kw)
        assert isinstance(U, cp.ndarray) and isinstance(s, cp.ndarray), type(U)
        Uc, sc, Vtc = truncated_svd(A, random_state=0, **kw)
        assert U.dtype == Uc.dtype and s.dtype == sc.dtype
        tol = 1e-3 if A.dtype in (np.float32, np.complex64) else 1e-9
        np.testing.assert_allclose(s.get(), sc, rtol=tol, atol=tol * float(sc[0]))
        R = A - (U.get() * s.get()) @ Vt.get()
        Rc = A - (Uc * sc) @ Vtc
        assert np.linalg.norm(R) <= np.linalg.norm(Rc) * (1 + 10 * tol) + tol

    for dtype in (np.float32, np.float64, np.complex64, np.complex128):
        A = make_low_rank_matrix(300, 200, decay=0.85, dtype=dtype, random_state=1)
        for method in ("randomized", "block_krylov", "lanczos"):
            check(A, k=8, method=method)
        check(A, k=8, n_iter=3, power_iteration_normalizer="LU")
        check(A, tol=1e-2)
        check(A, tol=1e-4 if dtype in (np.float64, np.complex128) else 3e-3)
        U, s, Vt, err = truncated_svd(cp.asarray(A), 8, random_state=0, return_error=True)
        assert isinstance(err, float)
        Z = make_low_rank_matrix(60, 50, decay=np.linspace(2, 1, 6), dtype=dtype, random_state=2)
        U, s, Vt = truncated_svd(cp.asarray(Z), 10, random_state=0)
        assert np.all(s.get()[6:] == 0) and np.all(np.isfinite(U.get()))

    # float64 large enough for the float32 sketch, and its refinement on exact low rank.
    A = make_low_rank_matrix(1100, 1000, decay=0.9, random_state=3)
    check(A, k=20)
    check(A * 1e50, k=20)  # the float32 copy gets a power-of-two factor of its own
    L = make_low_rank_matrix(1100, 1000, decay=np.linspace(2, 1, 12), random_state=4)
    U, s, Vt = truncated_svd(cp.asarray(L), 15, random_state=0)
    assert np.linalg.norm(L - (U.get() * s.get()) @ Vt.get()) < 1e-10

    for dtype in (np.float32, np.complex128):
        B = make_low_rank_matrix(80, 70, decay=np.linspace(3, 1, 9), dtype=dtype, random_state=5)
        for axis in (0, 1):
            first, rest = (B[:30], B[30:]) if axis == 0 else (B[:, :25], B[:, 25:])
            U, s, Vt = np.linalg.svd(first, full_matrices=False)
            args = (cp.asarray(x) for x in (U[:, :9], s[:9], Vt[:9], rest))
            out = svd_update(*args, axis=axis, k=9)
            assert all(isinstance(x, cp.ndarray) for x in out)
            U2, s2, Vt2 = (x.get() for x in out)
            atol = 1e-4 if dtype == np.float32 else 1e-10
            np.testing.assert_allclose((U2 * s2) @ Vt2, B, atol=atol)

    # Mixing devices is refused with a clear error.
    try:
        svd_update(cp.asarray(U[:, :9]), s[:9], Vt[:9], rest)
    except TypeError as exc:
        assert "devices" in str(exc)
    else:
        raise AssertionError("mixed devices must raise")
    print("FAKE GPU OK")
    """
)


def test_cupy_code_paths_on_a_numpy_backed_fake_cupy(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(FAKE), env.get("PYTHONPATH", "")])
    script = tmp_path / "fake_gpu_run.py"
    script.write_text(SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "FAKE GPU OK" in proc.stdout
