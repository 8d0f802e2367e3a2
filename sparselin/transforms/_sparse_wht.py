"""The sparse Walsh-Hadamard transform: SparseFHT (noiseless) and SPRIGHT (noisy)."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats

from .._array import is_cupy_array, is_dask_array, namespace, result_dtype, to_numpy
from .._validation import check_int, check_random_state, check_real
from ._fwht import fwht
from ._peeling import decode, make_design, sample_positions

__all__ = ["DecodingError", "SparseSpectrum", "sparse_wht"]

METHODS = ("spright", "sparsefht")
HASHES = ("random", "rotate")
ON_FAILURE = ("warn", "raise", "ignore")
# n is capped so that every index fits a uint64 bit mask with room for the sign tricks.
MAX_BITS = 62


class DecodingError(RuntimeError):
    """Raised by :func:`sparse_wht` with ``on_failure="raise"`` when peeling does not finish.

    The partial :class:`SparseSpectrum` is attached as ``spectrum``.
    """

    def __init__(self, message: str, spectrum: SparseSpectrum) -> None:
        super().__init__(message)
        self.spectrum = spectrum


@dataclass(frozen=True)
class SparseSpectrum:
    """The nonzero Walsh-Hadamard coefficients found by :func:`sparse_wht`.

    Attributes
    ----------
    indices : ndarray of uint64, shape (s,)
        Frequencies ``k`` as n-bit integers (natural order: ``W[k, m] = (-1)**popcount(k & m)``),
        sorted.
    values : ndarray, shape (s,)
        The coefficients, in the normalisation requested from :func:`sparse_wht`; real for real
        samples, complex for complex ones, in the samples' precision.
    n : int
        Number of bits; the signal has length ``2**n``.
    n_samples : int
        Number of distinct signal samples read (queries made).
    time : float
        Wall-clock seconds spent in :func:`sparse_wht`, sampling included.
    success : bool
        Whether every bin was resolved (the residual is at the noise / round-off level). A
        ``False`` result may miss coefficients; see ``message``.
    method : str
        ``"spright"`` or ``"sparsefht"``.
    n_iter : int
        Peeling passes made.
    message : str
        What happened, in words.
    noise_std : float
        The noise standard deviation per sample that the thresholds assumed (given or
        estimated; 0 for a noiseless decode).
    """

    indices: np.ndarray
    values: np.ndarray
    n: int
    n_samples: int
    time: float
    success: bool
    method: str
    n_iter: int
    message: str
    noise_std: float = field(default=0.0)

    def __len__(self) -> int:
        return int(self.indices.size)

    def to_dense(self) -> np.ndarray:
        """The full spectrum as an array of length ``2**n`` (zeros elsewhere); n <= 30 only.

        Examples
        --------
        >>> import numpy as np
        >>> from sparselin.transforms import fwht, sparse_wht
        >>> X = np.zeros(256)
        >>> X[[3, 77]] = [2.0, -1.0]
        >>> spec = sparse_wht(fwht(X), 8, sparsity=2, normalize="forward", random_state=0)
        >>> np.allclose(spec.to_dense(), X)
        True
        """
        if self.n > 30:
            raise ValueError(
                f"to_dense is for n <= 30 (2**30 entries), this spectrum has n={self.n}"
            )
        out = np.zeros(1 << self.n, dtype=self.values.dtype)
        out[self.indices.astype(np.int64)] = self.values
        return out

    def __repr__(self) -> str:
        return (
            f"SparseSpectrum(n={self.n}, nonzeros={len(self)}, n_samples={self.n_samples}, "
            f"success={self.success}, method={self.method!r}, time={self.time:.3g}s)"
        )


def sparse_wht(
    signal: Any,
    n: int,
    *,
    sparsity: int,
    method: Literal["spright", "sparsefht"] = "spright",
    noise: float | Literal["auto"] = "auto",
    random_state: Any = None,
    normalize: Literal["ortho", "forward"] | None = None,
    n_groups: int = 3,
    n_bins: int | None = None,
    n_chains: int | None = None,
    hash: Literal["random", "rotate"] = "random",
    max_iter: int = 20,
    on_failure: Literal["warn", "raise", "ignore"] = "warn",
) -> SparseSpectrum:
    """K-sparse Walsh-Hadamard spectrum of a signal of length ``2**n`` from few samples.

    Finds the nonzero entries of ``X = fwht(x, normalize=normalize)`` when at most about
    ``sparsity`` of them are nonzero, reading only ``O(K log N)`` samples of ``x`` in
    ``O(K log**2 N)`` time (``K = sparsity``, ``N = 2**n``), so that the signal never has to
    exist in full: ``signal`` may be a function that is queried at the indices it needs.

    Two algorithms share the subsampling front end (C groups of ``B = 2**b`` bins, each a
    B-point WHT of the signal subsampled along a random hash, at several offsets) and the
    peeling decoder (find the bins that hold one coefficient, subtract it from its bins in
    the other groups, repeat):

    * ``"sparsefht"`` (Scheibler, Haghighatshoar, Vetterli 2015): noiseless; ``n - b + 1``
      offsets per group and an exact ratio test for single-coefficient bins.
    * ``"spright"`` (Li, Bradley, Pawar, Ramchandran 2015): robust to additive noise in the
      samples; ``n_chains`` chains of ``n - b + 1`` offsets per group, bits decided by soft
      majority across the chains, and energy tests at chi-square quantiles of the noise level.

    Parameters
    ----------
    signal : array_like or callable
        Either the signal, a 1-D NumPy or CuPy array of length ``2**n``, or a function
        ``signal(indices) -> samples`` taking an int64 NumPy array of indices in
        ``[0, 2**n)`` and returning the (real or complex) samples there, as an array of the
        same shape. The function is called once, with all the (distinct) indices needed.
    n : int
        Number of bits, 1 <= n <= 62 (the signal has length ``2**n``).
    sparsity : int
        K, the number of nonzero coefficients expected (an upper estimate); sets the number
        of bins. 1 <= K < 2**n.
    method : {"spright", "sparsefht"}, default="spright"
        The algorithm (see above). ``"sparsefht"`` assumes exact samples.
    noise : float or "auto", default="auto"
        Standard deviation of the additive noise in each sample (0 for exact samples); for
        complex samples ``sqrt(E|w|**2)``, i.e. ``sqrt(2)`` times the standard deviation of
        the real and of the imaginary part (``noise_std`` is reported the same way).
        ``"auto"`` first decodes as if the samples were exact, and keeps that result when
        it resolves every bin or finds coefficients that fit to round-off (which noise
        cannot); otherwise it estimates the noise from the bins that the design expects to
        be empty (a fraction ``exp(-K/B)`` of them). ``"sparsefht"`` takes only 0 or
        ``"auto"``, the latter meaning round-off only.
    random_state : None, int or numpy.random.Generator
        Seeds the hash matrices and offsets.
    normalize : {None, "ortho", "forward"}, default=None
        The normalisation of the returned values, as for :func:`fwht`: with the default the
        values are those of ``fwht(x)``; with ``"forward"`` those of ``fwht(x) / N``, the
        coefficients ``F`` of ``x[m] = sum_k F[k] (-1)**popcount(k & m)``.
    n_groups : int, default=3
        C, the number of subsampling groups (the decoding threshold of peeling is best at 3:
        ``K/B`` up to 2.45 coefficients per bin).
    n_bins : int, optional
        B, the bins per group, a power of two; default the smallest power of two >= K
        (``K/B <= 1``, as in the papers' experiments), >= 2K for K < 32, capped at ``2**n``.
    n_chains : int, optional
        Offset chains per group for ``"spright"``: default 1 when ``noise=0``, else
        ``ceil(log2(n))`` (5 for n = 17..32). ``"sparsefht"`` always uses 1.
    hash : {"random", "rotate"}, default="random"
        ``"random"``: a random invertible matrix over GF(2) per group, which spreads any
        support (e.g. the low-degree supports of Boolean functions) evenly over the bins.
        ``"rotate"``: SparseFHT's deterministic hash on ``b`` consecutive bits of ``k``,
        fine for uniformly random supports.
    max_iter : int, default=20
        Maximum number of peeling passes.
    on_failure : {"warn", "raise", "ignore"}, default="warn"
        What to do when peeling ends with unresolved bins (``success=False``): warn with a
        :class:`RuntimeWarning`, raise :class:`DecodingError`, or only report it in the result.

    Returns
    -------
    SparseSpectrum
        ``indices``, ``values``, ``n_samples``, ``time``, ``success`` and more.

    Raises
    ------
    ValueError
        Bad ``n``, ``sparsity >= 2**n``, a signal of the wrong length or holding NaN, a
        callable that returns the wrong shape or non-finite samples, or bad parameters.
    TypeError
        A signal that is neither an array nor a callable, or samples that are not numbers.
    DecodingError
        With ``on_failure="raise"``, when the spectrum could not be fully decoded.

    Notes
    -----
    Samples used: ``C * P * B`` at most, with ``P = n_chains * (n - b + 1)``: for the defaults
    and K >= 32 (``B < 2K``) at most ``6 K log2 N`` for SparseFHT and
    ``6 ceil(log2 n) K log2 N`` for SPRIGHT, twice that for K < 32 (``B < 4K``). Repeated
    indices are read once and ``n_samples`` counts distinct ones.

    Success has high probability for spectra whose support looks random to the hash (with
    ``hash="random"``, any fixed support does) and ``K`` at most the given ``sparsity``; a
    spectrum with more nonzeros than the bins can resolve gives ``success=False`` rather than
    a silently wrong answer. With noise, coefficients much below the noise level per bin
    (``noise * N**0.5 / B**0.5`` in ``fwht``'s ortho units) are not found.

    The decoding runs on the host; a CuPy ``signal`` is sampled on the device and only the
    samples are copied.

    Examples
    --------
    >>> import numpy as np
    >>> from sparselin.transforms import sparse_wht
    >>> def f(m):  # a black box on 2**24 points: 3 + 2 (-1)^<k1, m> - (-1)^<k2, m>
    ...     sign = lambda k: 1 - 2 * (np.array([bin(v).count("1") for v in m & k]) & 1)
    ...     return 3.0 + 2.0 * sign(0x5A5A5A) - sign(0x00F00F)
    >>> spec = sparse_wht(f, 24, sparsity=4, method="sparsefht", normalize="forward",
    ...                   random_state=0)
    >>> spec.indices.tolist(), np.round(spec.values, 12).tolist(), spec.success
    ([0, 61455, 5921370], [3.0, -1.0, 2.0], True)
    >>> spec.n_samples < 2**24 // 1000
    True
    """
    t0 = time.perf_counter()
    n = check_int(n, "n", low=1, high=MAX_BITS)
    N = 1 << n
    sparsity = check_int(sparsity, "sparsity", low=1, high=N - 1)
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(noise, str):
        if noise != "auto":
            raise ValueError(f"noise must be 'auto' or a non-negative number, got {noise!r}")
        sigma = None
    else:
        sigma = check_real(noise, "noise", low=0.0)
    if method == "sparsefht" and sigma not in (None, 0.0):
        raise ValueError(
            "method='sparsefht' assumes exact samples (noise=0 or 'auto'); use "
            "method='spright' for noisy samples"
        )
    if normalize is not None and (
        not isinstance(normalize, str) or normalize not in ("ortho", "forward")
    ):
        raise ValueError(f"normalize must be one of (None, 'ortho', 'forward'), got {normalize!r}")
    n_groups = check_int(n_groups, "n_groups", low=1, high=64)
    if n_bins is None:
        # B >= K as in the papers' experiments, and B >= 2K for small K, where peeling on a
        # handful of bins fails noticeably more often (measured: 88 % success at K = B = 4,
        # 100 % at B = 8).
        target = sparsity if sparsity >= 32 else 2 * sparsity
        b = min(n, max(1, math.ceil(math.log2(target))))
    else:
        n_bins = check_int(n_bins, "n_bins", low=2, high=N)
        if n_bins & (n_bins - 1):
            raise ValueError(f"n_bins must be a power of two, got {n_bins}")
        b = n_bins.bit_length() - 1
    if method == "sparsefht":
        if n_chains not in (None, 1):
            raise ValueError(
                f"method='sparsefht' uses one chain of offsets, got n_chains={n_chains}"
            )
        chains = 1
    elif n_chains is None:
        chains = 1 if sigma == 0.0 else max(1, math.ceil(math.log2(n)))
    else:
        chains = check_int(n_chains, "n_chains", low=1, high=1024)
    if not isinstance(hash, str) or hash not in HASHES:
        raise ValueError(f"hash must be one of {HASHES}, got {hash!r}")
    max_iter = check_int(max_iter, "max_iter", low=1)
    if not isinstance(on_failure, str) or on_failure not in ON_FAILURE:
        raise ValueError(f"on_failure must be one of {ON_FAILURE}, got {on_failure!r}")
    sampler = _sampler(signal, n)
    rng = check_random_state(random_state)

    design = make_design(n, b, n_groups, chains, hash, rng)
    positions = sample_positions(design)
    unique, inverse = np.unique(positions.ravel(), return_inverse=True)
    samples, sample_dtype = sampler(unique.astype(np.int64))
    B = 1 << b
    work = np.complex128 if sample_dtype.kind == "c" else np.float64
    u = samples.astype(work, copy=False)[inverse].reshape(positions.shape)
    # Decode in units where the largest sample is in [0.5, 1): the energy tests square the
    # bin values, which under- or overflows for samples near 1e-160 or 1e160 (1e-300 gave
    # an empty "successful" spectrum, 1e300 an OverflowError). A power of two keeps it exact.
    amax = float(np.max(np.abs(u))) if u.size else 0.0
    shift = math.frexp(amax)[1] if amax > 0 else 0
    u = _times_pow2(u, -shift)
    # Bins in the caller's normalisation: fwht(x, normalize)[k] = c * sum_m x[m] (-1)^<k,m>,
    # and the B-point transform of the subsample is (B / N) times the aliased sum.
    c = {None: 1.0, "ortho": N**-0.5, "forward": 1.0 / N}[normalize]
    U = fwht(u, axis=-1) * (c * N / B)

    eps = float(np.finfo(sample_dtype).eps)
    scale = float(np.max(np.abs(U))) if U.size else 0.0
    floor = (1e3 * eps * scale) ** 2 + np.finfo(float).tiny
    noise_var_to_bin = (c * N) ** 2 / B  # noise variance per bin value per unit sample variance
    result = None
    if method == "sparsefht" or sigma == 0.0:
        nu2 = 0.0
    elif sigma is not None:
        nu2 = math.ldexp(sigma, -shift) ** 2 * noise_var_to_bin
    else:
        # noise="auto": try the exact decode first. The energy-quantile estimate below takes
        # the bins that the design expects to be empty for noise; when they are not empty
        # (more nonzeros than `sparsity`, or B = N, where the hash is a bijection and every
        # bin of a dense-enough spectrum is occupied) it returns the signal's own level, the
        # thresholds then discard real coefficients and the decode reports success with
        # them missing. A bin that fits one coefficient to round-off over P >= 2 offsets
        # cannot come from noise above round-off, so an exact decode that resolves every
        # bin, or finds any such coefficient, proves the samples exact: its answer (or its
        # reported failure) stands, and only samples with no exact structure are noisy.
        exact = decode(U.copy(), design, method=method, nu2=0.0, floor=floor, max_iter=max_iter)
        if exact.success or (exact.indices.size and design.n_offsets >= 2):
            result, nu2 = exact, 0.0
        else:
            nu2 = _estimate_noise(U, sparsity, B, floor)
    if result is None:
        result = decode(U, design, method=method, nu2=nu2, floor=floor, max_iter=max_iter)
    out_dtype = result_dtype(sample_dtype)
    spectrum = SparseSpectrum(
        indices=result.indices.astype(np.uint64),
        values=_times_pow2(result.values, shift).astype(out_dtype),
        n=n,
        n_samples=int(unique.size),
        time=time.perf_counter() - t0,
        success=result.success,
        method=method,
        n_iter=result.n_iter,
        message=result.message,
        noise_std=math.ldexp(math.sqrt(nu2 / noise_var_to_bin), shift),
    )
    if not spectrum.success:
        if on_failure == "raise":
            raise DecodingError(spectrum.message, spectrum)
        if on_failure == "warn":
            warnings.warn(f"sparse_wht: {spectrum.message}", RuntimeWarning, stacklevel=2)
    return spectrum


def _sampler(signal: Any, n: int) -> Callable[[np.ndarray], tuple[np.ndarray, np.dtype]]:
    """Validate ``signal`` and return ``indices -> (host float/complex samples, dtype)``."""
    N = 1 << n
    if callable(signal) and not (isinstance(signal, np.ndarray) or is_cupy_array(signal)):

        def query(idx: np.ndarray) -> tuple[np.ndarray, np.dtype]:
            got = signal(idx.copy())  # a copy: the callable may not modify our indices
            if is_cupy_array(got):
                got = to_numpy(got)
            got = np.asarray(got)
            if got.dtype.kind not in "biufc":
                raise TypeError(f"signal(indices) must return numbers, got dtype {got.dtype}")
            if got.shape != idx.shape:
                raise ValueError(
                    f"signal(indices) must return an array of the indices' shape {idx.shape}, "
                    f"got shape {got.shape}"
                )
            _check_finite(got, "the samples returned by signal(indices)")
            return got, result_dtype(got.dtype)

        return query
    if is_dask_array(signal):
        raise TypeError("signal is a dask array; compute it first or pass a callable")
    if isinstance(signal, (list, tuple)) or (
        hasattr(signal, "__array__") and not is_cupy_array(signal)
    ):
        signal = np.asarray(signal)
    if not (isinstance(signal, np.ndarray) or is_cupy_array(signal)):
        raise TypeError(
            f"signal must be a 1-D array of length 2**n or a callable, got {type(signal).__name__}"
        )
    if signal.dtype.kind not in "biufc":
        raise TypeError(f"signal must hold numbers, got dtype {signal.dtype}")
    if signal.ndim != 1 or signal.shape[0] != N:
        raise ValueError(
            f"signal must be a 1-D array of length 2**n = {N}, got shape {signal.shape}"
        )
    xp = namespace(signal)

    def take(idx: np.ndarray) -> tuple[np.ndarray, np.dtype]:
        got = signal[idx] if xp is np else to_numpy(signal[xp.asarray(idx)])
        _check_finite(got, "signal")
        return got, result_dtype(signal.dtype)

    return take


def _times_pow2(a: np.ndarray, e: int) -> np.ndarray:
    """``a * 2**e``, exact, for ``e`` beyond a float's range (two steps: ldexp has no complex)."""
    half = e // 2
    return a * (2.0**half) * (2.0 ** (e - half)) if e else a


def _check_finite(a: np.ndarray, name: str) -> None:
    if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinity")


def _estimate_noise(U: np.ndarray, sparsity: int, B: int, floor: float) -> float:
    """Noise variance per bin value, from the bins expected to be empty.

    With K coefficients spread over B bins, a fraction ``exp(-K/B)`` of the bins holds none;
    their energies over the P offsets are chi-square distributed with P degrees of freedom
    (2P for complex data) times the noise variance. The ``exp(-K/B) / 2`` quantile of all bin
    energies estimates the median of those, then two rounds re-estimate the variance as the
    mean energy of the bins below the resulting zero-ton threshold.
    """
    C, P, _ = U.shape
    complex_data = np.iscomplexobj(U)
    dof = 2 * P if complex_data else P
    energy = np.sum(np.abs(U) ** 2, axis=1).ravel()
    frac = 0.5 * math.exp(-sparsity / B)
    q = float(np.quantile(energy, frac))
    nu2 = q / stats.chi2.median(dof) * (2.0 if complex_data else 1.0)
    for _ in range(2):
        if nu2 <= floor:
            break
        per = nu2 / 2 if complex_data else nu2
        thr = float(stats.chi2.isf(1e-3 / energy.size, dof)) * per
        below = energy[energy <= thr]
        if below.size == 0:
            break
        nu2 = float(np.mean(below)) / P
    return nu2 if nu2 > floor else 0.0
