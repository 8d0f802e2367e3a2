"""Write the small intersphinx inventories that let the docs link to NumPy, SciPy,
scikit-learn and Python without fetching anything at build time.

Intersphinx normally downloads each project's ``objects.inv`` during the build; the
sparselin docs must build offline, so ``docs/conf.py`` points intersphinx at the files this
script writes next to itself instead. Each lists only the names the sparselin docs refer to
(and a few that they are likely to), with the page that documents each one, built from the
URL scheme each project's documentation uses:

* NumPy: ``reference/generated/<name>.html`` for functions and classes, except the random
  generator API, which lives on hand-written pages under ``reference/random/``;
* SciPy: ``reference/generated/<name>.html``;
* scikit-learn: ``modules/generated/<name>.html``;
* Python: the ``library/<module>.html`` page of the module.

A reference to one of these projects that is missing here fails the docs build (see
``docs/_ext/sparselin_docs_checks.py``): add the name below and run

    python docs/_intersphinx/make_inventories.py

The output is deterministic, so an unchanged list rewrites identical files.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# Each project's entries: {(domain:role, name): page relative to the base URL}, or
# (page, display name) where the name is not what a link should show (terms, labels).
# A page ending in "#" gets the name as its anchor, which is where Sphinx's autodoc puts it.


def _generated(prefix: str, names: dict[str, list[str]]) -> dict[tuple[str, str], str]:
    """Entries for names documented on their own autosummary page ``<prefix><name>.html``."""
    return {
        (role, name): f"{prefix}{name}.html#" for role, group in names.items() for name in group
    }


NUMPY = {
    **_generated(
        "reference/generated/",
        {
            "py:class": ["numpy.ndarray", "numpy.dtype", "numpy.matrix"],
            "py:function": [
                "numpy.asarray",
                "numpy.ascontiguousarray",
                "numpy.allclose",
                "numpy.cumsum",
                "numpy.dot",
                "numpy.matmul",
                "numpy.mean",
                "numpy.var",
                "numpy.linalg.svd",
                "numpy.linalg.qr",
                "numpy.linalg.norm",
                "numpy.linalg.eigh",
                "numpy.linalg.cholesky",
                "numpy.linalg.lstsq",
                "numpy.linalg.solve",
                "numpy.fft.fft",
                "numpy.fft.ifft",
                "numpy.kron",
            ],
        },
    ),
    ("py:module", "numpy"): "reference/index.html#module-numpy",
    ("py:module", "numpy.linalg"): "reference/routines.linalg.html#module-numpy.linalg",
    ("py:module", "numpy.random"): "reference/random/index.html#module-numpy.random",
    ("py:class", "numpy.random.Generator"): "reference/random/generator.html#",
    ("py:function", "numpy.random.default_rng"): "reference/random/generator.html#",
    ("py:class", "numpy.random.RandomState"): "reference/random/legacy.html#",
    ("py:data", "numpy.inf"): "reference/constants.html#",
    ("py:data", "numpy.nan"): "reference/constants.html#",
    # Targets of numpydoc's default type links ("array_like", "scalar").
    ("std:term", "array_like"): ("glossary.html#term-array_like", "array_like"),
    ("std:label", "arrays.scalars"): ("reference/arrays.scalars.html#arrays-scalars", "Scalars"),
}

SCIPY = {
    **_generated(
        "reference/generated/",
        {
            "py:class": [
                "scipy.sparse.linalg.LinearOperator",
                "scipy.sparse.csr_matrix",
                "scipy.sparse.csc_matrix",
                "scipy.sparse.coo_matrix",
                "scipy.sparse.lil_matrix",
                "scipy.sparse.dok_matrix",
                "scipy.sparse.csr_array",
                "scipy.sparse.csc_array",
                "scipy.sparse.coo_array",
                "scipy.sparse.spmatrix",
                "scipy.sparse.sparray",
            ],
            "py:function": [
                "scipy.sparse.issparse",
                "scipy.sparse.random",
                "scipy.sparse.random_array",
                "scipy.sparse.linalg.svds",
                "scipy.sparse.linalg.eigsh",
                "scipy.sparse.linalg.aslinearoperator",
                "scipy.sparse.linalg.norm",
                "scipy.linalg.svd",
                "scipy.linalg.svdvals",
                "scipy.linalg.qr",
                "scipy.linalg.lu",
                "scipy.linalg.cholesky",
                "scipy.linalg.solve_triangular",
                "scipy.linalg.eigh",
                "scipy.linalg.hadamard",
                "scipy.fft.fft",
            ],
        },
    ),
    ("py:module", "scipy.sparse"): "reference/sparse.html#module-scipy.sparse",
    (
        "py:module",
        "scipy.sparse.linalg",
    ): "reference/sparse.linalg.html#module-scipy.sparse.linalg",
    ("py:module", "scipy.linalg"): "reference/linalg.html#module-scipy.linalg",
}

SKLEARN = _generated(
    "modules/generated/",
    {
        "py:class": [
            "sklearn.decomposition.TruncatedSVD",
            "sklearn.decomposition.PCA",
            "sklearn.decomposition.IncrementalPCA",
            "sklearn.decomposition.NMF",
            "sklearn.feature_extraction.text.TfidfVectorizer",
            "sklearn.feature_extraction.text.CountVectorizer",
            "sklearn.feature_extraction.text.HashingVectorizer",
            "sklearn.feature_extraction.text.TfidfTransformer",
            "sklearn.pipeline.Pipeline",
            "sklearn.preprocessing.Normalizer",
            "sklearn.preprocessing.StandardScaler",
            "sklearn.base.BaseEstimator",
            "sklearn.base.TransformerMixin",
            "sklearn.linear_model.Lasso",
            "sklearn.linear_model.OrthogonalMatchingPursuit",
            "sklearn.linear_model.ARDRegression",
            "sklearn.exceptions.ConvergenceWarning",
            "sklearn.multioutput.MultiOutputRegressor",
        ],
        "py:function": [
            "sklearn.utils.extmath.randomized_svd",
            "sklearn.utils.extmath.randomized_range_finder",
            "sklearn.utils.estimator_checks.check_estimator",
            "sklearn.pipeline.make_pipeline",
            "sklearn.linear_model.orthogonal_mp",
            "sklearn.metrics.r2_score",
        ],
    },
)
# The label that RegressorMixin.score's docstring (inherited by the regressors) refers to.
SKLEARN[("std:label", "r2_score")] = (
    "modules/model_evaluation.html#r2-score",
    "R² score, the coefficient of determination",
)

PYTHON = {
    # Targets of numpydoc's default type links ("bool", "int", "None", "iterable", ...).
    ("py:data", "None"): "library/constants.html#",
    ("py:data", "True"): "library/constants.html#",
    ("py:data", "False"): "library/constants.html#",
    ("std:label", "bltin-boolean-values"): (
        "library/stdtypes.html#bltin-boolean-values",
        "Boolean Type - bool",
    ),
    ("py:class", "list"): "library/stdtypes.html#",
    ("py:class", "tuple"): "library/stdtypes.html#",
    ("py:class", "str"): "library/stdtypes.html#",
    ("py:class", "dict"): "library/stdtypes.html#",
    ("py:class", "float"): "library/functions.html#",
    ("py:class", "int"): "library/functions.html#",
    ("py:function", "callable"): "library/functions.html#",
    ("std:term", "iterable"): ("glossary.html#term-iterable", "iterable"),
    ("std:term", "sequence"): ("glossary.html#term-sequence", "sequence"),
    ("std:term", "generator"): ("glossary.html#term-generator", "generator"),
    ("py:function", "contextlib.contextmanager"): "library/contextlib.html#",
    ("py:function", "collections.namedtuple"): "library/collections.html#",
    # Names the sparselin docs refer to.
    ("py:module", "logging"): "library/logging.html#module-logging",
    ("py:class", "logging.Logger"): "library/logging.html#",
    ("py:class", "logging.StreamHandler"): "library/logging.handlers.html#",
    ("py:function", "logging.basicConfig"): "library/logging.html#",
    ("py:function", "logging.getLogger"): "library/logging.html#",
    ("py:module", "ast"): "library/ast.html#module-ast",
    ("py:function", "ast.get_docstring"): "library/ast.html#",
    ("py:module", "sysconfig"): "library/sysconfig.html#module-sysconfig",
    ("py:function", "sysconfig.get_path"): "library/sysconfig.html#",
    ("py:class", "pathlib.Path"): "library/pathlib.html#",
}

# key -> (project name as the projects' own inventories spell it, base URL, entries)
PROJECTS = {
    "numpy": ("NumPy", "https://numpy.org/doc/stable/", NUMPY),
    "scipy": ("SciPy", "https://docs.scipy.org/doc/scipy/", SCIPY),
    "sklearn": ("scikit-learn", "https://scikit-learn.org/stable/", SKLEARN),
    "python": ("Python", "https://docs.python.org/3/", PYTHON),
}


def inventory_bytes(project: str, entries: dict[tuple[str, str], Any]) -> bytes:
    """Sphinx's inventory format, version 2: a plain header, then zlib-compressed lines
    ``name domain:role priority uri dispname`` (``$`` in the URI stands for the name and
    ``-`` for a display name equal to the name)."""
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        "# Version: stable\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    lines = []
    for (role, name), page in sorted(entries.items(), key=lambda item: (item[0][1], item[0][0])):
        page, display = page if isinstance(page, tuple) else (page, "-")
        uri = page + "$" if page.endswith("#") else page
        # The priorities Sphinx itself writes: 0 for modules, 1 for other Python objects,
        # -1 for labels and terms.
        priority = -1 if role.startswith("std:") else 0 if role == "py:module" else 1
        lines.append(f"{name} {role} {priority} {uri} {display}\n")
    return header.encode() + zlib.compress("".join(lines).encode(), 9)


def main() -> None:
    for key, (project, _, entries) in PROJECTS.items():
        (HERE / f"{key}.inv").write_bytes(inventory_bytes(project, entries))


if __name__ == "__main__":
    main()
