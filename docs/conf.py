"""Sphinx configuration: MyST pages, the notebooks with their saved outputs, the API from the docstrings.

Everything a page needs ships with the build: no fonts, scripts or maths from the network.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE / "_ext"), str(ROOT)]

project = "gridllm_nb"
author = "the gridllm_nb developers"
copyright = "the gridllm_nb developers"
from gridllm_nb.__version__ import __version__ as release

version = release

extensions = [
    "myst_nb",  # MyST Markdown pages and the notebooks (it brings myst_parser with it)
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "package_tree",
    "plain_docstrings",
]

# The notebooks live in notebooks/ (nbval runs them there); the docs show a copy with its saved
# outputs. An output that has HTML shows as HTML: its text/markdown copy (escaped text, for front
# ends without HTML) is left out of the copy, since Sphinx would parse it before choosing.
_NOTEBOOKS = HERE / "notebooks"
_NOTEBOOKS.mkdir(exist_ok=True)
for _nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
    _data = json.loads(_nb.read_text(encoding="utf-8"))
    for _cell in _data["cells"]:
        for _out in _cell.get("outputs", []):
            if "text/html" in _out.get("data", {}):
                _out["data"].pop("text/markdown", None)
    _text = json.dumps(_data, indent=1, ensure_ascii=False)
    _copy = _NOTEBOOKS / _nb.name
    if not _copy.exists() or _copy.read_text(encoding="utf-8") != _text:
        _copy.write_text(_text, encoding="utf-8")

nb_execution_mode = "off"
nb_output_stderr = "show"
nb_ipywidgets_js: dict = {}  # no widget manager from a CDN: a saved notebook shows its widgets' saved pictures
nb_render_markdown_format = "myst"
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}  # .rst first: autosummary writes its pages in reST
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
suppress_warnings = ["mystnb.unknown_mime_type"]  # the live widgets' view: a saved notebook has no kernel

autosummary_generate = True
autosummary_ignore_module_all = False  # a module's __all__ is its documented surface, as for autodoc
autodoc_default_options = {"members": True, "undoc-members": True, "member-order": "bysource"}
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_mock_imports = ["llama_cpp"]

# A broken cross-reference fails the build (-n), but names from other projects have no
# inventory offline (no intersphinx: the build reaches no network), so only ours are checked.
nitpicky = True
nitpick_ignore_regex = [(r"py:.*", r"(?!gridllm_nb\b).*"), (r"py:class", r"gridllm_nb\..*\.[A-Z]")]  # and type variables

html_theme = "furo"
html_title = "gridllm_nb"
html_static_path: list[str] = []
html_show_sourcelink = False
html_copy_source = False
html_theme_options = {"navigation_with_keys": True}


def _no_math(self, node):  # a formula shows as its source text
    self.body.append(self.encode(node.astext()))
    raise __import__("docutils").nodes.SkipNode


def setup(app):
    # Nothing here is typeset, so no MathJax (it would come from a CDN): math shows as its text.
    app.add_html_math_renderer("text", (_no_math, None), (_no_math, None))
    app.config.html_math_renderer = "text"
