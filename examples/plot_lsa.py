"""
Latent semantic analysis of the Python standard library
=======================================================

Latent semantic analysis (LSA) reduces a TF-IDF matrix of documents × terms to a few
hundred dimensions with a truncated SVD: documents that use related words land close
together, and each component is a "topic", a weighted list of terms. It is the main use of
:class:`sklearn.decomposition.TruncatedSVD`, and so of its drop-in replacement
:class:`sparselin.TruncatedSVD`.

This example runs LSA on real text that every Python installation has, the sources of the
standard library (code, comments and docstrings, from
:func:`sparselin.datasets.load_stdlib_corpus`), and compares sparselin with scikit-learn on
the same matrix: the time of a fit, the variance explained, whether they find the same
components, and the topics.
"""

# %%
# The corpus and its TF-IDF matrix
# --------------------------------
# Documents are runs of 18 non-blank lines of the standard library's ``.py`` files; 6000 of
# them, drawn at random, keep the example fast. Python's keywords, ``self`` and English stop
# words are left out of the vocabulary, as are terms in more than half of the documents or
# in fewer than five; ``sublinear_tf`` damps terms repeated within a document, the usual
# setting for LSA.

import keyword
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.decomposition import TruncatedSVD as SklearnTruncatedSVD
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer

from sparselin import TruncatedSVD
from sparselin.datasets import load_stdlib_corpus

documents = load_stdlib_corpus(6000, random_state=0)
stop_words = sorted(ENGLISH_STOP_WORDS | {w.lower() for w in keyword.kwlist} | {"self", "cls"})
vectorizer = TfidfVectorizer(
    max_df=0.5,
    min_df=5,
    stop_words=stop_words,
    sublinear_tf=True,
    token_pattern=r"(?u)\b[a-zA-Z]{3,}\b",  # words of three letters or more
)
X = vectorizer.fit_transform(documents)
terms = vectorizer.get_feature_names_out()
print(
    f"TF-IDF matrix: {X.shape[0]} documents x {X.shape[1]} terms, {X.nnz} non-zeros "
    f"({X.nnz / np.prod(X.shape):.2%} dense)"
)

# %%
# The same fit with scikit-learn and sparselin
# --------------------------------------------
# 100 components with the default settings of both (randomized SVD, five power iterations,
# ten oversamples), in float64 (``TfidfVectorizer``'s default) and in float32, which both
# libraries keep. Each time is the best of three fits (the first also compiles sparselin's
# Numba kernels). Times depend on the machine and its BLAS; the documentation is built with
# one BLAS thread (see ``docs/conf.py``), and ``benchmarks/`` holds the systematic
# comparisons.


def best_fit(cls, X, repeat=3, **params):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        est = cls(**params).fit(X)
        times.append(time.perf_counter() - t0)
    return min(times), est


n_components = 100
fits = {}
for dtype in (np.float64, np.float32):
    X_dtype = X.astype(dtype)
    for name, cls in {"scikit-learn": SklearnTruncatedSVD, "sparselin": TruncatedSVD}.items():
        fits[name, np.dtype(dtype).name] = best_fit(
            cls, X_dtype, n_components=n_components, random_state=0
        )

norm2 = X.multiply(X).sum()
print(f"{'':24s} {'time':>9s} {'explained variance':>19s} {'energy kept':>12s}")
for (name, dtype), (seconds, est) in fits.items():
    energy = np.sum(est.singular_values_.astype(np.float64) ** 2) / norm2
    print(
        f"{name + ', ' + dtype:24s} {seconds * 1e3:6.0f} ms "
        f"{est.explained_variance_ratio_.sum():19.4f} {energy:12.4f}"
    )

sk, sl = fits["scikit-learn", "float64"][1], fits["sparselin", "float64"][1]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
labels = [f"{name}\n{dtype}" for name, dtype in fits]
ax1.barh(labels, [seconds * 1e3 for seconds, _ in fits.values()], color=["0.6", "C0"] * 2)
ax1.invert_yaxis()
ax1.set_xlabel("time of a fit (ms), best of 3")
ax1.set_title(f"TruncatedSVD(n_components={n_components})")
index = np.arange(1, n_components + 1)
ax2.plot(index, np.cumsum(sk.explained_variance_ratio_), "0.6", lw=4, label="scikit-learn")
ax2.plot(index, np.cumsum(sl.explained_variance_ratio_), "C0--", label="sparselin")
ax2.set_xlabel("number of components")
ax2.set_ylabel("explained variance ratio")
ax2.set_title("Cumulative explained variance (float64)")
ax2.legend()
plt.show()

# %%
# Both find the same components
# -----------------------------
# Both libraries use the same sign convention, so their components can be compared entry by
# entry. The cosines of the principal angles between the two 100-dimensional subspaces
# measure how far apart the subspaces are (1 means identical), whatever the order or the
# rotation of the vectors within them.

cosines = np.linalg.svd(sk.components_ @ sl.components_.T, compute_uv=False)
per_component = np.abs(np.sum(sk.components_ * sl.components_, axis=1))
rel_diff = np.abs(sl.singular_values_ - sk.singular_values_) / sk.singular_values_
print(f"cosines of the principal angles: min {cosines.min():.4f}, mean {cosines.mean():.4f}")
print(f"|cos| between matching components 1-10: {np.round(per_component[:10], 4)}")
print(f"largest relative difference of the singular values: {rel_diff.max():.2e}")

# %%
# Topics
# ------
# The terms with the largest weights in a component are its topic. The first component
# points at the mean of the documents (TF-IDF entries are all positive and the data are not
# centred), so it mixes the most common terms; the next ones separate the subjects of the
# standard library: its unit tests, the Unicode character names of the codecs, networking,
# and so on.

n_topics, n_terms = 8, 8
print("topic  top terms (sparselin)")
for i in range(n_topics):
    top = np.argsort(sl.components_[i])[::-1][:n_terms]
    print(f"{i:5d}  {' '.join(terms[top])}")

fig, axes = plt.subplots(2, 4, figsize=(11, 5.4), layout="constrained")
for i, ax in enumerate(axes.ravel()):
    top = np.argsort(sl.components_[i])[::-1][:n_terms]
    ax.barh(terms[top], sl.components_[i, top], color="C0")
    ax.invert_yaxis()
    ax.set_title(f"component {i}", fontsize=10)
    ax.tick_params(axis="both", labelsize=8)
fig.suptitle("Top terms of the leading LSA components of the standard library")
plt.show()

# %%
# How many components? A fraction of the energy
# ---------------------------------------------
# scikit-learn needs the number of components; sparselin also accepts the fraction of
# ``‖X‖_F²`` to keep and finds the smallest number of components that keeps it (as
# :class:`sklearn.decomposition.PCA` does for the variance). That fraction is the
# *uncentred* energy of X; ``explained_variance_ratio_`` is the share of the *variance*,
# about the mean of each term. They are different numbers: for TF-IDF data, whose entries are
# all non-negative, the energy kept is usually the larger one, because the components also
# capture the mean of the documents, which counts as energy but not as variance. The two
# agree only for centred data.

est = TruncatedSVD(n_components=0.2, random_state=0).fit(X)
energy = np.sum(est.singular_values_**2) / norm2
print(
    f"n_components=0.2: {est.n_components_} components keep {energy:.3f} of ||X||_F^2 and "
    f"explain {est.explained_variance_ratio_.sum():.3f} of the variance"
)
