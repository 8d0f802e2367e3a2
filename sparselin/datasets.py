"""Data for examples, tests and benchmarks: matrices with a known spectrum, and real text.

Nothing here downloads: the text corpus is read from the running Python's standard library.
"""

from __future__ import annotations

import numbers
import os
import sysconfig
from importlib import resources

import numpy as np
from numpy.typing import ArrayLike
from sklearn.utils import check_random_state

from ._validation import check_random_state as _check_random_state

__all__ = [
    "calibration_sentences",
    "heldout_sentences",
    "load_stdlib_corpus",
    "make_low_rank_matrix",
]

# Folders of the standard library directory that are not the standard library.
_NOT_STDLIB = frozenset({"site-packages", "dist-packages", "__pycache__"})


def make_low_rank_matrix(
    n_rows: int,
    n_cols: int,
    *,
    decay: float | str | ArrayLike = 0.97,
    dtype: type = np.float64,
    random_state: int | np.random.Generator | None = None,
    return_singular_values: bool = False,
):
    """A dense matrix ``U diag(s) V^T`` with Haar-random orthonormal ``U``, ``V`` and chosen ``s``.

    Parameters
    ----------
    n_rows, n_cols : int
        Shape of the matrix.
    decay : float, {"slow"} or array-like, default=0.97
        A float ``r`` in (0, 1] gives ``s_i = r**i`` (fast, geometric decay); ``"slow"`` gives
        ``s_i = (i + 1) ** -0.5``; an array gives the singular values themselves (its length is
        the rank, at most ``min(n_rows, n_cols)``; it is sorted in descending order).
    dtype : numpy dtype, default=float64
        float32, float64, complex64 or complex128.
    random_state : None, int or numpy.random.Generator
        Seed of the random orthonormal factors.
    return_singular_values : bool, default=False
        Also return ``s`` (in float64, descending).

    Returns
    -------
    A : ndarray of shape (n_rows, n_cols)
    s : ndarray, only with ``return_singular_values=True``

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.datasets import make_low_rank_matrix
    >>> A, s = make_low_rank_matrix(50, 40, decay=0.9, random_state=0,
    ...                             return_singular_values=True)
    >>> bool(np.allclose(np.linalg.svd(A, compute_uv=False), s))
    True
    """
    if n_rows < 1 or n_cols < 1:
        raise ValueError(f"n_rows and n_cols must be >= 1, got {(n_rows, n_cols)}")
    r = min(n_rows, n_cols)
    if isinstance(decay, str):
        if decay != "slow":
            raise ValueError(f"decay must be a float, 'slow' or an array, got {decay!r}")
        s = (np.arange(r) + 1.0) ** -0.5
    elif np.ndim(decay) == 0:
        rate = float(decay)
        if not 0 < rate <= 1:
            raise ValueError(f"decay must be in (0, 1], got {rate}")
        s = rate ** np.arange(r, dtype=np.float64)
    else:
        s = np.sort(np.asarray(decay, dtype=np.float64).ravel())[::-1]
        if s.size > r or s.size == 0 or np.any(s < 0):
            raise ValueError(f"decay as an array must hold 1..{r} non-negative values")
        r = s.size
    rng = (
        check_random_state(random_state)
        if not isinstance(random_state, np.random.Generator)
        else random_state
    )
    if isinstance(rng, np.random.RandomState):
        rng = np.random.default_rng(rng.randint(2**31))
    complex_out = np.dtype(dtype).kind == "c"

    def haar(n: int) -> np.ndarray:
        G = rng.standard_normal((n, r))
        if complex_out:
            G = G + 1j * rng.standard_normal((n, r))
        Q, R = np.linalg.qr(G)
        # Fix the phases so that Q is Haar distributed (QR alone is not).
        d = np.diagonal(R)
        return Q * (d / np.abs(d))

    U = haar(n_rows)
    V = haar(n_cols)
    A = ((U * s) @ V.conj().T).astype(dtype, copy=False)
    return (A, s) if return_singular_values else A


def load_stdlib_corpus(
    n_documents: int | None = 40000,
    *,
    lines_per_document: int = 18,
    random_state: int | np.random.Generator | None = 0,
) -> list[str]:
    """Real text every machine has: the Python standard library's sources, in short documents.

    Every ``.py`` file of the running interpreter's standard library (``site-packages``
    excluded) is read in a fixed order, its blank lines dropped, and cut into documents of
    ``lines_per_document`` consecutive lines: code, comments and docstrings, a vocabulary of
    identifiers and English words with the heavy-tailed frequencies of natural text. With the
    defaults on CPython 3.11 there are about 41000 documents; ``TfidfVectorizer(max_features=
    30000)`` turns 40000 of them into a 40000 x 30000 matrix with about 1.4 million non-zeros,
    a typical latent semantic analysis (LSA) workload. Nothing is downloaded; the text differs
    between Python versions, and is the same on every run of one installation.

    Parameters
    ----------
    n_documents : int or None, default=40000
        How many documents to return, drawn without replacement; None returns them all, in
        file order.
    lines_per_document : int, default=18
        Non-blank lines per document (the last document of a file may be shorter).
    random_state : None, int, numpy.random.Generator or RandomState, default=0
        Seed of the draw of ``n_documents`` documents.

    Returns
    -------
    documents : list of str

    Raises
    ------
    ValueError
        When ``n_documents`` exceeds the number of documents the standard library yields
        (the message gives that number), or an argument is out of range.

    Examples
    --------
    >>> from sklearn.feature_extraction.text import TfidfVectorizer
    >>> from sparselin import truncated_svd
    >>> from sparselin.datasets import load_stdlib_corpus
    >>> docs = load_stdlib_corpus(2000, random_state=0)
    >>> len(docs), all(isinstance(d, str) and d for d in docs)
    (2000, True)
    >>> X = TfidfVectorizer(max_features=5000).fit_transform(docs)
    >>> U, s, Vt = truncated_svd(X, 20, random_state=0)
    >>> U.shape, Vt.shape
    ((2000, 20), (20, 5000))
    """
    if n_documents is not None:
        if isinstance(n_documents, bool) or not isinstance(n_documents, numbers.Integral):
            raise TypeError(f"n_documents must be an int or None, got {n_documents!r}")
        if n_documents < 1:
            raise ValueError(f"n_documents must be >= 1, got {n_documents}")
    if isinstance(lines_per_document, bool) or not isinstance(
        lines_per_document, numbers.Integral
    ):
        raise TypeError(f"lines_per_document must be an int, got {lines_per_document!r}")
    if lines_per_document < 1:
        raise ValueError(f"lines_per_document must be >= 1, got {lines_per_document}")
    documents = []
    for root, dirs, files in os.walk(sysconfig.get_paths()["stdlib"]):
        # Sorted in place, so that the walk (and hence the corpus) does not depend on the
        # file system's order.
        dirs[:] = sorted(d for d in dirs if d not in _NOT_STDLIB)
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            # A few test files hold deliberately malformed bytes; they are text all the same.
            with open(os.path.join(root, name), encoding="utf-8", errors="replace") as f:
                lines = [line for line in f.read().splitlines() if line.strip()]
            for start in range(0, len(lines), lines_per_document):
                documents.append("\n".join(lines[start : start + lines_per_document]))
    if n_documents is None:
        return documents
    if n_documents > len(documents):
        raise ValueError(
            f"n_documents={n_documents} exceeds the {len(documents)} documents of "
            f"{lines_per_document} lines this Python's standard library yields; ask for fewer "
            "or pass a smaller lines_per_document"
        )
    chosen = _check_random_state(random_state).choice(
        len(documents), size=n_documents, replace=False
    )
    return [documents[i] for i in chosen]


def _read_sentences(filename: str, section: str | None) -> list[str]:
    text = resources.files("sparselin").joinpath("data", filename).read_text(encoding="utf-8")
    out, current = [], None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("# section:"):
            current = line.split(":", 1)[1].strip()
        elif line and not line.startswith("#") and section in (None, current):
            out.append(line)
    return out


def _check_section(section: str | None) -> None:
    if section not in (None, "natural", "docs"):
        raise ValueError(f"section must be None, 'natural' or 'docs', got {section!r}")


def calibration_sentences(section: str | None = None) -> list[str]:
    """The English sentences that ship with sparselin for calibration.

    Parameters
    ----------
    section : {None, "natural", "docs"}, default None
        ``"natural"``: everyday sentences written for sparselin; ``"docs"``: sentences from
        the Python standard library's docstrings; ``None``: both.

    Returns
    -------
    list of str
        One sentence per item. None of them is in :func:`heldout_sentences`.

    Examples
    --------
    >>> from sparselin.datasets import calibration_sentences, heldout_sentences
    >>> cal = calibration_sentences()
    >>> len(cal) > 1000, not set(cal) & set(heldout_sentences())
    (True, True)
    """
    _check_section(section)
    return _read_sentences("calibration.txt", section)


def heldout_sentences(section: str | None = None) -> list[str]:
    """English sentences kept for evaluation only, disjoint from :func:`calibration_sentences`.

    ``section`` selects ``"natural"`` (everyday sentences), ``"docs"`` (docstrings of
    standard-library modules that contribute nothing to the calibration set) or both.

    Examples
    --------
    >>> from sparselin.datasets import heldout_sentences
    >>> len(heldout_sentences("natural")), len(heldout_sentences())
    (198, 328)
    """
    _check_section(section)
    return _read_sentences("heldout.txt", section)
