"""The package shell: backend seam, CUDA loader, datasets, info and the command line."""

from __future__ import annotations

import platform
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import aslinearoperator

import sparselin
from sparselin import _array, _cuda, cli
from sparselin.datasets import make_low_rank_matrix


def test_namespace_and_dtype_rules():
    assert _array.namespace(np.ones(2), None, 3.0) is np
    assert _array.namespace(sp.csr_matrix(np.eye(2))) is np
    assert _array.scipy_namespace(np).__name__ == "scipy"
    assert _array.result_dtype(np.float32) == np.float32
    assert _array.result_dtype(np.complex64) == np.complex64
    assert _array.result_dtype(np.int32) == np.float64
    assert _array.result_dtype(np.bool_) == np.float64
    assert _array.result_dtype(np.float16) == np.float32
    with pytest.raises(TypeError, match="dtype"):
        _array.result_dtype(np.dtype("U3"))
    assert _array.is_sparse(sp.csr_matrix(np.eye(2)))
    assert not _array.is_sparse(np.eye(2))
    assert _array.is_linear_operator(aslinearoperator(np.eye(2)))
    assert not _array.is_cupy_array(np.eye(2))
    x = np.arange(3.0)
    assert _array.to_device(x, "cpu") is x
    with pytest.raises(ValueError, match="device"):
        _array.to_device(x, "tpu")


def test_dask_input_is_routed_or_refused_without_computing():
    da = pytest.importorskip("dask.array")
    X = da.ones((10, 5), chunks=(5, 5))
    # truncated_svd has a dask path (tests/linalg/test_dask.py); it returns a dask U.
    U, s, Vt = sparselin.truncated_svd(X, 2, random_state=0)
    assert isinstance(U, da.Array) and isinstance(s, np.ndarray)
    U, s, Vt = np.linalg.svd(np.eye(10, 5), full_matrices=False)
    # svd_update streams a dask C block by block (tests/linalg/test_dask.py); a dask U is
    # refused before anything is computed.
    U2, s2, Vt2 = sparselin.svd_update(U, s, Vt, da.ones((10, 2), chunks=(5, 2)))
    assert isinstance(U2, np.ndarray) and Vt2.shape == (5, 7)
    with pytest.raises(TypeError, match="dask"):
        sparselin.svd_update(da.from_array(U), s, Vt, np.ones((10, 2)))


def test_cupy_is_lazy_and_optional():
    code = "import sys, sparselin; sparselin.truncated_svd; print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cuda_sources_are_found():
    src = _cuda.cuda_source("svd_flip.cu")
    assert "svd_flip_kernel" in src
    with pytest.raises(FileNotFoundError, match="not found"):
        _cuda.cuda_source("missing.cu")
    if _array.cupy_or_none() is None:
        with pytest.raises(ImportError, match="CuPy"):
            _cuda.load_module("svd_flip.cu")


def test_datasets_spectrum():
    A, s = make_low_rank_matrix(30, 20, decay="slow", random_state=0, return_singular_values=True)
    np.testing.assert_allclose(np.linalg.svd(A, compute_uv=False), s)
    Z = make_low_rank_matrix(10, 8, decay=0.5, dtype=np.complex64, random_state=1)
    assert Z.dtype == np.complex64
    with pytest.raises(ValueError, match="decay"):
        make_low_rank_matrix(5, 5, decay=1.5)


def test_system_info_and_versions():
    info = sparselin.system_info()
    assert info["sparselin"] == sparselin.__version__
    assert "numba_threading_layer" in info
    text = sparselin.show_versions()
    assert "numpy" in text and "gpu" in text


def test_cli_version_info_demo(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert sparselin.__version__ in capsys.readouterr().out
    assert cli.main(["info"]) == 0
    assert "numba threading layer" in capsys.readouterr().out
    assert cli.main(["demo", "--rows", "300", "--cols", "200", "--tol", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "rank" in out and "relative error" in out


def test_console_script_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "sparselin", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "sparselin" in out.stdout


@pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() != "x86_64",
    reason="the nvidia-cuda-nvrtc wheel exists for Linux x86-64 only",
)
def test_cuda_sources_compile_with_nvrtc():
    """Each kernel compiles with NVRTC — the compiler cupy.RawModule uses — and its options.

    NVRTC ships as a wheel (nvidia-cuda-nvrtc-cu12, in the test extra) and needs no GPU, so a
    CUDA syntax or template error fails CI on a machine without a device.
    """
    import ctypes
    import os

    import nvidia.cuda_nvrtc

    from sparselin.linalg._dense import _FLIP_EXPRS

    lib_dir = os.path.join(next(iter(nvidia.cuda_nvrtc.__path__)), "lib")
    lib = ctypes.CDLL(os.path.join(lib_dir, "libnvrtc.so.12"))
    prog = ctypes.c_void_p()
    src = _cuda.cuda_source("svd_flip.cu").encode()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), src, b"svd_flip.cu", 0, None, None) == 0
    for expr in _FLIP_EXPRS:
        assert lib.nvrtcAddNameExpression(prog, expr.encode()) == 0
    opts = [o.encode() for o in _cuda.NVRTC_OPTIONS] + [b"-arch=compute_80"]
    status = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    assert status == 0, log.value.decode()
    for expr in _FLIP_EXPRS:
        lowered = ctypes.c_char_p()
        assert lib.nvrtcGetLoweredName(prog, expr.encode(), ctypes.byref(lowered)) == 0
        assert b"svd_flip_kernel" in lowered.value
    lib.nvrtcDestroyProgram(ctypes.byref(prog))


def test_functional_core_never_imports_the_estimators():
    # Layers (DESIGN.md): estimators call the functional core, never the other way round.
    import ast
    from pathlib import Path

    root = Path(sparselin.__file__).parent
    for family in ("linalg", "transforms", "recovery", "robust"):
        for path in sorted((root / family).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom):
                    target = (node.module or "").lstrip(".")
                    assert not target.startswith(("estimators", "sparselin.estimators")), path
                    assert not (node.level >= 2 and target.split(".")[0] == "estimators"), path


def test_stdlib_corpus():
    from sparselin.datasets import load_stdlib_corpus

    everything = load_stdlib_corpus(None, lines_per_document=40)
    assert len(everything) > 5000 and all(isinstance(d, str) and d.strip() for d in everything)
    # The first document is the first 40 non-blank lines of the first file, in walk order.
    assert len(everything[0].splitlines()) <= 40
    docs = load_stdlib_corpus(300, lines_per_document=40, random_state=1)
    assert docs == load_stdlib_corpus(300, lines_per_document=40, random_state=1)
    assert docs != load_stdlib_corpus(300, lines_per_document=40, random_state=2)
    assert len(set(docs)) > 290 and set(docs) <= set(everything)
    with pytest.raises(ValueError, match="exceeds the"):
        load_stdlib_corpus(len(everything) + 1, lines_per_document=40)
    for bad, error in [(0, ValueError), (2.5, TypeError), (True, TypeError)]:
        with pytest.raises(error, match="n_documents"):
            load_stdlib_corpus(bad)
    for bad, error in [(0, ValueError), ("3", TypeError)]:
        with pytest.raises(error, match="lines_per_document"):
            load_stdlib_corpus(10, lines_per_document=bad)
