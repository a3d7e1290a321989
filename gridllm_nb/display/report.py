"""A run or a grid as one HTML file to mail: safe to open, complete on its own.

Why a file of its own kind: a notebook needs Jupyter and a kernel-side
library to read; a report is opened by whoever receives it, in any browser,
perhaps from a mail client. So it holds everything in one file (the
answers side by side, the stats, the checks and judges, the score table,
a header with the date, the endpoint and the options) and may run nothing
and load nothing:

- no script, no ``src``, no ``<link>``, no ``@import`` or ``url(`` in its
  one ``<style>``; a Content-Security-Policy ``<meta>`` (``default-src
  'none'``) makes the browser refuse anything that got in all the same;
- model text goes through ``render`` as in the notebook (markdown-it with
  raw HTML off, then nh3's allow-list: images become their alt text, links
  keep only http(s), mailto and ``#`` targets, which load nothing until
  clicked); every other string (tags, errors, check reasons, the prompt,
  options) is escaped;
- the endpoint is shown without its password, query or fragment, and the
  token's value appears nowhere: it is replaced wherever it might have been
  echoed (in a prompt, an answer, an error).

``save_html`` is what ``Results.save_html`` and ``GridResults.save_html``
call (the package root gives it to core, which never imports this layer).
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ..config import TOKEN_ENV, mask_credentials, resolve_endpoint
from ..errors import ConfigError, GridLLMError
from ..text import one_line, shorten
from .table import results_html

if TYPE_CHECKING:
    from ..core.grid import GridResults
    from ..core.results import Result, Results, RunSpec

__all__ = ["POLICY", "report_html", "save_html"]

# Nothing may load (images, fonts, frames, styles from elsewhere) and nothing may run; the one inline
# <style> and the table's inline styles are allowed. Links still open when clicked.
POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
_MASK = "********"
_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1b1b; margin: 0 auto;
       padding: 1.5em 2em 3em; max-width: 1400px; }
h1 { font-size: 1.5em; margin: 0 0 .3em; }
h2 { font-size: 1.2em; margin: 1.6em 0 .5em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
h3 { font-size: 1.05em; margin: 1.4em 0 .4em; }
dl.head { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; margin: 0; }
dl.head dt { color: #666; }
dl.head dd { margin: 0; overflow-wrap: anywhere; }
pre.prompt { background: #f6f6f6; border-left: 3px solid #bbb; padding: .6em .8em; white-space: pre-wrap;
             overflow-wrap: anywhere; margin: .4em 0 .8em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ddd; padding: .35em .6em; vertical-align: top; }
th { background: #f3f3f3; text-align: left; }
.tex2jax_ignore th { font-weight: normal; }  /* an answer's head: its tag is <strong> already */
table.figures td.n { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #176f2c; } .fail { color: #a00; } .pending { color: #666; }
ul.verdicts { margin: 0; padding-left: 1.1em; }
.note { color: #666; font-size: .9em; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def endpoint_shown(url: str) -> str:
    """The URL as a report may show it: the password masked, no query or fragment (where a key could hide)."""
    parts = urlsplit(mask_credentials(url))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _endpoint(spec: RunSpec | None) -> str:
    url = spec.url if spec is not None else None
    if url:
        return endpoint_shown(url)
    try:
        return endpoint_shown(resolve_endpoint().url) + " (the configured endpoint)"
    except GridLLMError:
        return "the configured endpoint"


def _secrets(spec: RunSpec | None) -> list[str]:
    """Every token value that must not appear in the page: the run's, the environment's, the configuration's."""
    found = [spec.token.reveal() if spec is not None and spec.token else "", os.environ.get(TOKEN_ENV) or ""]
    try:
        configured = resolve_endpoint().token
    except GridLLMError:
        configured = None
    found.append(configured.reveal() if configured else "")
    return [s for s in dict.fromkeys(found) if len(s) >= 4]


def _scrub(page: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        for form in {secret, html.escape(secret), html.escape(secret, quote=False)}:
            page = page.replace(form, _MASK)
    return page


def _when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M %Z").strip() if moment else ""


def _head(title: str, facts: Sequence[tuple[str, str]]) -> str:
    """The header: what this is, and a definition list of escaped facts (empty ones left out)."""
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in facts if v)
    return f"<header><h1>{_e(title)}</h1><dl class='head'>{rows}</dl></header>"


def _spec_facts(spec: RunSpec | None, fmt: str) -> list[tuple[str, str]]:
    options = dict(spec.options) if spec is not None and spec.options else {}
    return [
        ("endpoint", _e(_endpoint(spec))),
        ("options", _e(json.dumps(options, ensure_ascii=False, default=str)) if options else "none"),
        ("hours", _e(spec.hours) if spec is not None and spec.hours is not None else ""),
        ("format", _e(fmt)),
        ("system prompt", f"<pre class='prompt'>{_e(spec.system)}</pre>" if spec is not None and spec.system else ""),
    ]


def _verdicts(r: Result) -> str:
    items = []
    for v in getattr(r, "checks", None) or ():
        kind = "pending" if v.passed is None else "pass" if v.passed else "fail"
        raw = (f" <span class='note'>(the judge said: {_e(shorten(one_line(v.raw), 300))})</span>"
               if getattr(v, "raw", None) and not v.passed else "")
        items.append(f"<li class='{kind}'>{_e(v.line())}{raw}</li>")
    return f"<ul class='verdicts'>{''.join(items)}</ul>" if items else ""


def _figure(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


def _stats(results: Sequence[Result]) -> str:
    head = ("model", "state", "finish", "time", "queued", "first token", "generating", "tokens", "tok/s")
    rows = []
    for r in results:
        tokens = "-" if r.tokens is None else f"{'~' if r.tokens_estimated else ''}{r.tokens}"
        cells = [r.label, r.finish or "-", _figure(None if r.unsent else r.elapsed, " s"), _figure(r.queued_s, " s"),
                 _figure(r.ttft_s, " s"), _figure(r.gen_s, " s"), tokens, _figure(r.tokens_per_s, "", 0)]
        rows.append(f"<tr><th scope='row'>{_e(r.tag)}</th><td>{_e(cells[0])}</td><td>{_e(cells[1])}</td>"
                    + "".join(f"<td class='n'>{_e(c)}</td>" for c in cells[2:]) + "</tr>")
    heads = "".join(f"<th>{h}</th>" for h in head)
    return f"<table class='figures'><thead><tr>{heads}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _checks_table(results: Sequence[Result]) -> str:
    if not any(getattr(r, "checks", None) for r in results):
        return ""
    rows = "".join(f"<tr><th scope='row'>{_e(r.tag)}</th><td>{_verdicts(r) or '-'}</td></tr>" for r in results)
    return f"<table><thead><tr><th>model</th><th>checks and judges</th></tr></thead><tbody>{rows}</tbody></table>"


def _answers(results: Results) -> str:
    shown = list(results.values())
    parts = [f"<pre class='prompt'>{_e(results.prompt)}</pre>", results_html(shown, results.format)]
    if checks := _checks_table(shown):
        parts.append(checks)
    return "".join(parts)


def _page(title: str, body: str, secrets: Iterable[str]) -> str:
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{POLICY}\">"
        "<meta name='referrer' content='no-referrer'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>\n<body>{body}"
        "<p class='note'>Written by gridllm_nb. Model text is shown sanitized: no script, no image, nothing "
        "loaded; links open only when clicked.</p></body></html>\n"
    )
    return _scrub(page, secrets)


def _run_html(results: Results) -> str:
    spec = results.spec
    models = ", ".join(results)
    facts = [("written", _e(_when(datetime.now()))), ("run started", _e(_when(results.started_at))),
             ("run", _e(results.run_id or "")), ("models", _e(models)), *_spec_facts(spec, results.format)]
    shown = list(results.values())
    body = [_head(f"gridllm report: {len(results)} model{'' if len(results) == 1 else 's'}", facts),
            "<h2>Prompt and answers</h2>", _answers(results), "<h2>Stats</h2>", _stats(shown)]
    return _page(f"gridllm report · {models}", "".join(body), _secrets(spec))


def _scores(grid: GridResults) -> str:
    """The grid's score table (pass rates, judge scores, ties) where it has checks, else its summary."""
    from ..core.scores import has_scores, scores_html

    rows = grid.scores()
    if has_scores(rows):
        note = ("<p class='note'>95% intervals: Wilson for pass rates, Student's t for judge scores. Models "
                "whose intervals overlap are not distinguishable on these prompts.</p>")
        return scores_html(rows) + note
    head = "".join(f"<th>{h}</th>" for h in ("model", "completed", "failed", "total", "success", "mean time"))
    body = "".join(
        f"<tr><th scope='row'>{_e(s['model'])}</th><td class='n'>{s['completed']}</td><td class='n'>{s['failed']}"
        f"</td><td class='n'>{s['total']}</td><td class='n'>{s['success_rate']:.0%}</td>"
        f"<td class='n'>{_e(_figure(s['mean_s'], ' s'))}</td></tr>" for s in grid.summary())
    return f"<table class='figures'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _grid_html(grid: GridResults) -> str:
    spec = getattr(grid, "spec", None) or next((run.spec for run in grid.runs if run.spec is not None), None)
    started = getattr(grid, "started_at", None) or next((run.started_at for run in grid.runs if run.started_at),
                                                        None)
    fmt = grid.runs[0].format if grid.runs else "markdown"
    size = (f"{len(grid)} prompt{'' if len(grid) == 1 else 's'} × "
            f"{len(grid.models)} model{'' if len(grid.models) == 1 else 's'}")
    facts = [("written", _e(_when(datetime.now()))), ("run started", _e(_when(started))),
             ("models", _e(", ".join(grid.models))), *_spec_facts(spec, fmt)]
    body = [_head(f"gridllm report: {size}", facts), "<h2>Scores</h2>", _scores(grid)]
    for i, run in enumerate(grid.runs):
        name = f" · {grid.names[i]}" if grid.names is not None else ""
        body.append(f"<h2>Prompt {i + 1}{_e(name)}</h2>{_answers(run)}")
    return _page(f"gridllm report · {size}", "".join(body), _secrets(spec))


def report_html(value: Results | GridResults) -> str:
    """The report of a run (``Results``) or a grid (``GridResults``) as one self-contained HTML page."""
    from ..core.results import Results

    return _run_html(value) if isinstance(value, Results) else _grid_html(value)


def save_html(value: Results | GridResults, path: Path | str) -> Path:
    """Write ``report_html(value)`` to ``path`` (UTF-8); returns the path. A file that cannot be
    written is a one-line ``ConfigError``."""
    file = Path(path)
    page = report_html(value)
    try:
        file.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the report {file}: {exc.strerror or exc}") from None
    return file
