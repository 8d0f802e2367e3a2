"""Build-time checks of the sparselin docs: offline-readable output, resolved links to the
projects sparselin builds on, and no stray object reprs in the example gallery.

Loaded as a Sphinx extension by ``docs/conf.py``. Each check fails the build (with ``-W``, as
CI runs it) and says what to change. The checks are plain functions so that the test suite can
run them on small synthetic inputs without building the docs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sphinx.util import logging

LOGGER = logging.getLogger(__name__)

# Projects whose references must resolve through the local inventories in docs/_intersphinx.
INTERSPHINX_PREFIXES = ("numpy.", "scipy.", "sklearn.")

# A <script src=...> or <link href=...> tag; the attribute value is group "url".
_TAG = re.compile(
    r"<(?P<tag>script|link)\b(?P<attrs>[^>]*?)\b(?:src|href)\s*=\s*"
    r"(?P<q>[\"'])(?P<url>.*?)(?P=q)(?P<rest>[^>]*)>",
    re.IGNORECASE | re.DOTALL,
)
# Folders of an HTML build that hold assets (a theme's Jinja templates among them), not pages.
_NOT_PAGES = {"_static", "_sources", "_images", "_downloads"}
# Link relations that make a browser fetch the target while rendering the page.
_FETCHED_RELS = {"stylesheet", "preload", "modulepreload", "icon", "shortcut", "prefetch"}

# The default repr of an object (<module.Class object at 0x...>) and matplotlib's own
# reprs of the artists that plotting calls return (Text(...), [<matplotlib.lines.Line2D...>]).
_STRAY_REPR = re.compile(
    r"<[\w.]+ object at 0x[0-9a-fA-F]+>|^\s*(?:Text|Legend|Line2D|Figure|Axes)\(|<matplotlib\.",
    re.MULTILINE,
)


def external_resources(html: str) -> list[str]:
    """URLs of scripts and stylesheets (or fonts, icons) that a page loads from another host.

    Hyperlinks (``<a href>``) are not resources and are not returned.
    """
    found = []
    for match in _TAG.finditer(html):
        url = match["url"].strip()
        if not _is_remote(url):
            continue
        attrs = (match["attrs"] + match["rest"]).lower()
        if match["tag"].lower() == "link":
            rel = re.search(r"\brel\s*=\s*[\"']([^\"']*)[\"']", attrs)
            rels = set(rel.group(1).split()) if rel else set()
            if not rels & _FETCHED_RELS:
                continue  # e.g. rel="canonical": metadata, nothing is fetched
        found.append(url)
    return found


def missing_local_resources(html: str, page: Path, root: Path) -> list[str]:
    """Local scripts and stylesheets that a page loads but that are absent from the build."""
    missing = []
    for match in _TAG.finditer(html):
        url = match["url"].strip()
        if not url or _is_remote(url) or url.startswith(("data:", "#")):
            continue
        if match["tag"].lower() == "link":
            rel = re.search(r"\brel\s*=\s*[\"']([^\"']*)[\"']", match["attrs"] + match["rest"])
            if not rel or not set(rel.group(1).lower().split()) & _FETCHED_RELS:
                continue
        path = urlsplit(url).path
        target = (page.parent / path).resolve()
        if not target.is_file() and not (root / path.lstrip("/")).is_file():
            missing.append(url)
    return missing


def stray_reprs(example_rst: str) -> list[str]:
    """Object reprs in the captured output blocks of one sphinx-gallery page (its .rst)."""
    found = []
    for block in _output_blocks(example_rst):
        found += [m.group(0).strip() for m in _STRAY_REPR.finditer(block)]
    return found


def _output_blocks(rst: str) -> Iterable[str]:
    """The text of each ``sphx-glr-script-out`` block of a sphinx-gallery .rst page."""
    lines = rst.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == ".. rst-class:: sphx-glr-script-out":
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(".. code-block::"):
                i += 1
            i += 1
            block = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
                block.append(lines[i])
                i += 1
            yield "\n".join(block)
        else:
            i += 1


def _is_remote(url: str) -> bool:
    return url.lower().startswith(("http://", "https://", "//"))


def _warn_unresolved(app: Any, env: Any, node: Any, contnode: Any) -> None:
    """Warn when a Python reference into NumPy, SciPy, scikit-learn or an inventory named
    explicitly (``python:list``) resolves nowhere.

    Sphinx calls every ``missing-reference`` handler, so this one asks intersphinx itself
    whether the reference resolves. Without this check such a reference would silently
    render as plain text: only terms and labels warn by themselves.
    """
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    inventory, sep, _ = target.partition(":")
    named = bool(sep) and inventory in app.config.intersphinx_mapping
    if not (named or target.startswith(INTERSPHINX_PREFIXES)):
        return None
    from sphinx.ext.intersphinx import missing_reference

    if missing_reference(app, env, node, contnode) is None:
        LOGGER.warning(
            "no intersphinx entry for %r (%s role): add it to docs/_intersphinx/"
            "make_inventories.py, with the page that documents it, and run that script",
            target,
            node.get("reftype"),
            location=node,
        )
    return None


def _check_output(app: Any, exception: Exception | None) -> None:
    """After an HTML build: fail on remote resources, missing local ones and stray reprs."""
    if exception is not None or app.builder.format != "html":
        return
    root = Path(app.outdir)
    problems = []
    for page in sorted(root.rglob("*.html")):
        rel = page.relative_to(root)
        if rel.parts[0] in _NOT_PAGES:
            continue  # theme assets and downloads, not pages a reader opens
        html = page.read_text(encoding="utf-8", errors="replace")
        problems += [f"{rel}: loads {url} from the network" for url in external_resources(html)]
        problems += [
            f"{rel}: loads {url}, which is not in the build"
            for url in missing_local_resources(html, page, root)
        ]
    gallery = Path(app.srcdir) / "auto_examples"
    for example in sorted(gallery.glob("*.rst")):
        for text in stray_reprs(example.read_text(encoding="utf-8")):
            problems.append(
                f"examples/{example.stem}.py prints {text!r}: end the cell with plt.show() "
                "or assign the plotting call's result (_ = ...)"
            )
    for problem in problems:
        LOGGER.warning(problem)
    if problems:
        # A warning raised this late does not always change Sphinx's exit status: fail hard.
        from sphinx.errors import ExtensionError

        raise ExtensionError(
            f"{len(problems)} problem(s) in the built docs (see the warnings above)"
        )


def setup(app: Any) -> dict[str, Any]:
    app.connect("missing-reference", _warn_unresolved)
    # After sphinx-mathjax-offline (priority 500) has copied MathJax into _static.
    app.connect("build-finished", _check_output, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
