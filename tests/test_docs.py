"""The documentation: it builds with warnings as errors, every example on its pages runs, the README stays short and true.

Examples run against the session's local service with the built-in models: a page's
``python`` and ``ipython`` blocks, in order, as the cells of one notebook in a real kernel
(``%%gridllm``, ``await`` and widgets behave as in Jupyter); its ``console`` blocks' ``$``
lines with bash. A line (or a Python block) marked ``# not run:`` says why it is skipped.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
KERNEL_LANGS = {"python", "ipython"}
SKIP = "not run:"


def package_tree():
    spec = importlib.util.spec_from_file_location("package_tree", DOCS / "_ext" / "package_tree.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fences(text: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced block, in order; directives (``{toctree}``...) left out."""
    return [(t.info.split()[0] if t.info else "", t.content)
            for t in MarkdownIt("commonmark").parse(text) if t.type == "fence" and not t.info.startswith("{")]


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def build(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-n", "-q",
         "-d", str(out / "doctrees"), *extra, str(DOCS), str(out / "html")],
        check=False, capture_output=True, text=True, cwd=ROOT, timeout=600)


def run_page(text: str, url: str, workdir: Path) -> None:
    """Run every example of one page; raise on the first that fails."""
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    blocks = fences(text)
    cells = [nbformat.v4.new_code_cell(code) for lang, code in blocks
             if lang in KERNEL_LANGS and SKIP not in code]
    if cells:
        nb = nbformat.v4.new_notebook(cells=cells)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        km = KernelManager(kernel_name="python3", transport="ipc", ip=str(workdir / "kernel"))
        NotebookClient(nb, km=km, timeout=300, resources={"metadata": {"path": str(workdir)}}).execute()
    env = dict(os.environ, GRIDLLM_API_URL=url,
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    for lang, code in blocks:
        if lang != "console":
            continue
        for line in code.splitlines():
            if not line.startswith("$ ") or SKIP in line:
                continue
            done = subprocess.run(["bash", "-c", line[2:]], check=False, capture_output=True, text=True, env=env,
                                  cwd=workdir, timeout=300, stdin=subprocess.DEVNULL)
            if done.returncode >= 2 or "Traceback" in done.stderr:
                raise AssertionError(f"{line!r} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


# -- the build ---------------------------------------------------------------------------


def test_the_site_builds_with_warnings_as_errors_and_loads_nothing_from_the_network(tmp_path: Path) -> None:
    done = build(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    html = tmp_path / "html"
    assert (html / "index.html").exists()
    for page in ("magic", "panel", "python", "cli", "compare", "configuration", "service", "jobs-api",
                 "troubleshooting", "benchmarks", "architecture", "reference", "notebooks/05-compare"):
        assert (html / f"{page}.html").exists(), page
    loads = re.compile(r"""(?:src=|@import\s+|url\()["']?(?:https?:)?//""")
    for path in html.rglob("*.html"):
        assert not loads.search(path.read_text(encoding="utf-8")), f"{path} loads something from the network"
    tree = (html / "architecture.html").read_text(encoding="utf-8")
    assert "The one door from the client side to the embedded local service" in tree


def test_a_stale_name_fails_the_build(tmp_path: Path) -> None:
    page = DOCS / "stale-name-check.md"
    page.write_text("# Stale\n\n{func}`gridllm_nb.core.run.no_such_function`\n", encoding="utf-8")
    try:
        done = build(tmp_path)
    finally:
        page.unlink()
    assert done.returncode != 0
    assert "no_such_function" in done.stdout + done.stderr


# -- the examples ------------------------------------------------------------------------


def test_every_page_with_examples_is_found() -> None:
    with_examples = {p.stem for p in pages()
                     if any(lang in KERNEL_LANGS | {"console"} for lang, _ in fences(p.read_text(encoding="utf-8")))}
    assert {"magic", "panel", "python", "cli", "compare", "configuration", "service", "jobs-api"} <= with_examples


@pytest.mark.models
@pytest.mark.parametrize("page", [p.stem for p in pages()
                                  if any(lang in KERNEL_LANGS | {"console"}
                                         for lang, _ in fences(p.read_text(encoding="utf-8")))])
def test_the_examples_of_each_page_run(page: str, local_service, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDLLM_API_URL", local_service.url)
    monkeypatch.setenv("GRIDLLM_HISTORY", str(tmp_path / "history.sqlite3"))
    run_page((DOCS / f"{page}.md").read_text(encoding="utf-8"), local_service.url, tmp_path)


@pytest.mark.models
@pytest.mark.parametrize("example", [
    "```ipython\n%load_ext gridllm_nb\n```\n\n```ipython\n%%gridllm smollm2:135m --no-such-option 1\nHi\n```\n",
    "```python\nfrom gridllm_nb import run\nrun('Hi', ['smollm2:135m'], no_such_keyword=1)\n```\n",
    "```console\n$ gridllm-nb run Hi -m smollm2:135m --no-such-option\n```\n",
])
def test_a_renamed_option_in_an_example_fails(example: str, local_service, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDLLM_HISTORY", str(tmp_path / "history.sqlite3"))
    with pytest.raises(Exception, match="no-such-option|no_such_keyword"):
        run_page(example, local_service.url, tmp_path)


# -- the README --------------------------------------------------------------------------


def test_the_readme_fits_on_a_few_screens() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 200


def test_the_readme_architecture_lists_exactly_the_package_files() -> None:
    tree = package_tree()
    assert tree.readme_files(README.read_text(encoding="utf-8")) == tree.files()


def test_the_readme_tree_check_notices_a_missing_file() -> None:
    tree = package_tree()
    text = README.read_text(encoding="utf-8")
    shorter = "\n".join(line for line in text.splitlines() if not line.strip().startswith("wire.py"))
    assert tree.readme_files(shorter) != tree.files()


def test_the_readme_pictures_and_links_exist() -> None:
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(((?:docs|benchmarks|notebooks)/[^)#\s]+)", text)
    assert any(t.startswith("docs/images/") for t in targets)
    for target in targets:
        assert (ROOT / target).exists(), target
    for tool in ("%%gridllm", "Panel(", "gridllm-nb run", "from gridllm_nb import", "make demo", "make test"):
        assert tool in text, tool


def test_every_picture_the_docs_show_exists() -> None:
    for page in pages():
        for target in re.findall(r"\]\((images/[^)\s]+)\)", page.read_text(encoding="utf-8")):
            assert (DOCS / target).exists(), f"{page.name}: {target}"
    for svg in (DOCS / "images").glob("*.svg"):
        assert not re.search(r"url\(['\"]?https?:", svg.read_text(encoding="utf-8")), f"{svg.name} loads a font or image"
