"""The documentation's offline guarantees, checked without building the docs.

The docs build itself (CI's last step) runs ``docs/_ext/sparselin_docs_checks.py`` on its
output; these tests check that those checks catch what they are meant to, that the committed
intersphinx inventories are the ones the script writes and hold only well-formed links, and
that no example ends a cell with a plotting call whose return value would be printed.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def checks():
    pytest.importorskip("sphinx")  # the docs extra
    return _load(DOCS / "_ext" / "sparselin_docs_checks.py", "sparselin_docs_checks")


@pytest.fixture(scope="module")
def inventories():
    return _load(DOCS / "_intersphinx" / "make_inventories.py", "make_inventories")


def test_external_resources_are_found_and_links_are_not(checks):
    html = """
    <link rel="stylesheet" href="https://cdn.example.org/bootstrap.min.css" />
    <link href='//fonts.example.org/font.woff2' rel="preload" as="font">
    <script defer src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>
    <script src="_static/mathjax/tex-chtml.js"></script>
    <link rel="canonical" href="https://example.org/docs/" />
    <a href="https://numpy.org/doc/stable/reference/generated/numpy.linalg.svd.html">svd</a>
    """
    assert checks.external_resources(html) == [
        "https://cdn.example.org/bootstrap.min.css",
        "//fonts.example.org/font.woff2",
        "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js",
    ]
    assert checks.external_resources('<script src="../_static/x.js"></script>') == []


def test_missing_local_resources(checks, tmp_path):
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "here.js").write_text("")
    page = tmp_path / "sub" / "page.html"
    page.parent.mkdir()
    html = (
        '<script src="../_static/here.js?digest=1"></script>'
        '<script src="../_static/mathjax/tex-chtml.js"></script>'
        '<link rel="stylesheet" href="../_static/missing.css">'
    )
    assert checks.missing_local_resources(html, page, tmp_path) == [
        "../_static/mathjax/tex-chtml.js",
        "../_static/missing.css",
    ]


def test_stray_reprs_in_gallery_output(checks):
    rst = """
.. code-block:: Python

    ax.legend()

.. rst-class:: sphx-glr-script-out

 .. code-block:: none

    rank 6, error 0.1
    <matplotlib.legend.Legend object at 0x7f8310196510>
    Text(0.5, 0.98, 'Streaming 400 x 3000')

.. rst-class:: sphx-glr-script-out

 .. code-block:: none

    Text of a message that is not a repr

.. code-block:: Python

    <matplotlib source text outside output blocks is not output>
"""
    assert checks.stray_reprs(rst) == [
        "<matplotlib.legend.Legend object at 0x7f8310196510>",
        "Text(",
    ]
    assert checks.stray_reprs(rst.split(".. rst-class")[0]) == []


def _cells(source: str) -> list[list[ast.stmt]]:
    """Top-level statements of a sphinx-gallery script, grouped by its ``# %%`` cells."""
    tree = ast.parse(source)
    starts = [i + 1 for i, line in enumerate(source.splitlines()) if line.startswith("# %%")]
    cells: list[list[ast.stmt]] = [[] for _ in range(len(starts) + 1)]
    for node in tree.body:
        cells[sum(node.lineno > s for s in starts)].append(node)
    return [c for c in cells if c]


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("plot_*.py")), ids=str)
def test_example_cells_do_not_echo_plotting_results(example):
    # sphinx-gallery prints the repr of a cell's last expression (Text(...), <Legend ...>),
    # and so would a notebook made from the example.
    for cell in _cells(example.read_text(encoding="utf-8")):
        last = cell[-1]
        if not (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)):
            continue
        func = last.value.func
        name = ast.unparse(func)
        assert name in {"plt.show", "print"} or not isinstance(func, ast.Attribute), (
            f"{example.name}:{last.lineno}: the cell ends with {name}(...), whose result "
            "would be printed; end it with plt.show()"
        )


def test_committed_inventories_are_what_the_script_writes(inventories):
    for key, (project, _, entries) in inventories.PROJECTS.items():
        committed = (DOCS / "_intersphinx" / f"{key}.inv").read_bytes()
        assert committed == inventories.inventory_bytes(project, entries), (
            f"docs/_intersphinx/{key}.inv is stale: run python docs/_intersphinx/"
            "make_inventories.py"
        )


# The documented URL layout of each project (see make_inventories.py).
URL_PATTERNS = {
    "numpy": r"https://numpy\.org/doc/stable/(reference/(generated/{name}\.html#{name}|random/"
    r"(generator|legacy)\.html#{name}|constants\.html#{name}|[\w./-]+\.html#[\w.-]+)"
    r"|glossary\.html#term-[\w-]+)",
    "scipy": r"https://docs\.scipy\.org/doc/scipy/reference/(generated/{name}\.html#{name}"
    r"|[\w.]+\.html#module-{name})",
    "sklearn": r"https://scikit-learn\.org/stable/modules/(generated/{name}\.html#{name}"
    r"|[\w]+\.html#[\w-]+)",
    "python": r"https://docs\.python\.org/3/(library/[\w.]+\.html#[\w.-]+|glossary\.html"
    r"#term-[\w-]+)",
}


@pytest.mark.parametrize("key", sorted(URL_PATTERNS))
def test_inventory_links_follow_each_projects_url_scheme(key):
    inventory = pytest.importorskip("sphinx.util.inventory")
    base = {"numpy": "https://numpy.org/doc/stable/", "scipy": "https://docs.scipy.org/doc/scipy/"}
    base |= {"sklearn": "https://scikit-learn.org/stable/", "python": "https://docs.python.org/3/"}
    data = (DOCS / "_intersphinx" / f"{key}.inv").read_bytes()
    inv = inventory.InventoryFile.loads(data, uri=base[key]).data
    assert inv
    for role, items in inv.items():
        for name, item in items.items():
            if role.startswith("py:") and key != "python":
                assert name.split(".")[0] == key, name
            pattern = URL_PATTERNS[key].format(name=re.escape(name))
            assert re.fullmatch(pattern, item.uri), (role, name, item.uri)


def _docstrings(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = [tree, *ast.walk(tree)]
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return [d for n in nodes if isinstance(n, kinds) and (d := ast.get_docstring(n))]


def test_every_reference_in_the_docs_has_an_inventory_entry(inventories):
    """The names the docs link to (explicit roles in .rst, docstrings and examples, and the
    "See Also" entries of docstrings) are all in the local inventories: the build would
    otherwise warn (and fail under -W)."""
    docscrape = pytest.importorskip("numpydoc.docscrape")
    known = {name for _, _, entries in inventories.PROJECTS.values() for _, name in entries}
    role = re.compile(
        r":(?:func|class|meth|obj|mod|data|attr|exc):`~?((?:numpy|scipy|sklearn)\.[\w.]+)`"
    )
    external = re.compile(r"(?:numpy|scipy|sklearn)\.[\w.]+")
    texts = [p.read_text(encoding="utf-8") for p in DOCS.glob("*.rst")]
    texts += [p.read_text(encoding="utf-8") for p in (DOCS / "user_guide").glob("*.rst")]
    texts += [p.read_text(encoding="utf-8") for p in (ROOT / "examples").glob("*.py")]
    referenced = set()
    for path in (ROOT / "sparselin").glob("**/*.py"):
        texts.append(path.read_text(encoding="utf-8"))
        for doc in _docstrings(path):
            for items, _ in docscrape.NumpyDocString(doc)["See Also"]:
                referenced |= {name for name, _ in items if external.fullmatch(name)}
    for text in texts:
        referenced |= set(role.findall(text))
    missing = referenced - known
    assert not missing, f"add these to docs/_intersphinx/make_inventories.py: {sorted(missing)}"


def test_docs_render_math_offline():
    conf = (DOCS / "conf.py").read_text(encoding="utf-8")
    assert '"sphinx-mathjax-offline"' in conf
    assert "mathjax_path" not in conf  # the offline extension sets it to its own copy
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    docs_extra = re.search(r"^docs = \[(.*?)\]", pyproject, re.S | re.M).group(1)
    assert "sphinx-mathjax-offline" in docs_extra
