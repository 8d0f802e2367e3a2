"""Sphinx configuration for the sparselin documentation.

Build with ``python -m sphinx -b html -W --keep-going docs docs/_build/html`` from the
repository root. Neither the build nor the built pages need the network: MathJax is served
from the build itself (sphinx-mathjax-offline), intersphinx reads the small inventories in
``_intersphinx/`` (written by ``_intersphinx/make_inventories.py``) instead of downloading
``objects.inv``, and ``_ext/sparselin_docs_checks.py`` fails the build if a page loads a script
or stylesheet from another host, if a reference into NumPy, SciPy or scikit-learn has no
inventory entry, or if an example prints a stray object repr.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

# Examples draw with matplotlib in a headless build; pick the backend before anything
# imports pyplot.
os.environ.setdefault("MPLBACKEND", "Agg")
# The examples run with one BLAS/OpenMP thread (set before NumPy is first imported, below).
# On a small or shared machine, multithreaded OpenBLAS can spend far more time waiting for
# its threads than computing on matrices of the examples' size (a 1500 x 60 QR measured 50x
# slower on a busy 2-core runner), which made build times and the printed timings depend on
# whatever else ran. One thread makes both reproducible; export the variables to override.
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

HERE = Path(__file__).resolve().parent
# Let a source checkout build its own docs even when sparselin is not installed.
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE / "_ext"))

import sparselin  # noqa: E402

project = "sparselin"
author = "sparselin developers"
copyright = "sparselin developers"
release = sparselin.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    # Ships MathJax 3 and copies it into _static/mathjax: formulas render without a CDN.
    "sphinx-mathjax-offline",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "sparselin_docs_checks",
]

templates_path = ["_templates"]
# sphinx-gallery's execution-time tables load jQuery and DataTables from CDNs; they are not
# written (write_computation_times below), and stale copies from older builds are skipped.
exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
    "auto_examples/*.ipynb",
    "sg_execution_times.rst",
    "auto_examples/sg_execution_times.rst",
]
root_doc = "index"
default_role = "literal"

# -- autodoc / autosummary --------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"  # numpydoc's "Parameters" section already states the types

# -- intersphinx ------------------------------------------------------------------------------
# Links to the projects sparselin builds on, from local inventories: the build must not fetch
# objects.inv. The links themselves point at each project's published documentation.
intersphinx_mapping = {
    key: (url, str(HERE / "_intersphinx" / f"{key}.inv"))
    for key, url in {
        "numpy": "https://numpy.org/doc/stable/",
        "scipy": "https://docs.scipy.org/doc/scipy/",
        "sklearn": "https://scikit-learn.org/stable/",
        "python": "https://docs.python.org/3/",
    }.items()
}

# -- numpydoc ---------------------------------------------------------------------------------
# The class template lists the methods itself; numpydoc's own member tables would duplicate
# them and point at pages that autosummary does not generate.
numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
# Link the common types in "Parameters"/"Returns" (ndarray, LinearOperator, ...) to their
# projects' pages; every other word of a type stays plain text.
numpydoc_xref_param_type = True
numpydoc_xref_ignore = "all"
numpydoc_xref_aliases = {
    "ndarray": "numpy.ndarray",
    "dtype": "numpy.dtype",
    "Generator": "numpy.random.Generator",
    "RandomState": "numpy.random.RandomState",
    "LinearOperator": "scipy.sparse.linalg.LinearOperator",
}

# -- sphinx-gallery ---------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": "/plot_",
    "ignore_pattern": r"__init__\.py",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    # "Examples using ..." sections on the API pages.
    "doc_module": ("sparselin",),
    "backreferences_dir": "api/generated/backreferences",
    # A failing example fails the build (and so CI).
    "only_warn_on_example_error": False,
    "abort_on_example_error": False,
    "plot_gallery": "True",
    "write_computation_times": False,
}

# Matplotlib warns when a headless backend is asked to show figures; sphinx-gallery
# collects the figures itself.
warnings.filterwarnings(
    "ignore",
    category=UserWarning,
    message=r".*(non-GUI backend|cannot be shown).*",
)

# -- HTML -------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sparselin {release}"
html_static_path = ["_static"]
html_show_sourcelink = False
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "install": []}
