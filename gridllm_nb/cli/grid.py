"""``gridllm-nb grid FILE``: a prompt file × models from the terminal, checked and scored, a CI guard.

The file is JSON Lines (one object with a ``prompt`` a line, or one string)
or CSV (a ``prompt`` column); the other columns fill the checks' and the
judges' ``{column}`` fields. The grid's progress (with the running pass
rate) goes to stderr, the score table (or ``--json``: one object per prompt
× model) to stdout. Exit 0 when every job completed and, with
``--min-pass``, every model passed at least that share of its answers;
1 otherwise, so a prompt suite can guard a model change in CI.
``--estimate`` sends nothing and prints what the grid would cost.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from ..config import parse_assignments
from ..errors import ConfigError
from .options import add_endpoint, add_job_options

__all__ = ["add_assessment_arguments", "add_grid_parser", "assessments", "cmd_grid", "read_prompt_file"]


def add_assessment_arguments(p: argparse.ArgumentParser) -> None:
    """``--check`` and ``--judge``, repeatable, for ``run`` and ``grid``."""
    p.add_argument("--check", action="append", default=[], metavar="SPEC",
                   help="check every answer: contains:TEXT, icontains:TEXT, not-contains:TEXT, equals:TEXT, "
                        "regex:PATTERN, json, json-schema:FILE, max-words:N ({column} reads the prompt's row)")
    p.add_argument("--judge", action="append", default=[], metavar="MODEL[:RUBRIC]",
                   help="a model grades every answer 0-10 by the rubric, as a job on the same service")


def assessments(args: argparse.Namespace) -> dict[str, Any]:
    """``checks=`` and ``judge=`` from ``--check`` and ``--judge``."""
    return {"checks": list(args.check) or None, "judge": list(args.judge) or None}


def add_grid_parser(sub: Any) -> None:
    p = sub.add_parser("grid", help="run a prompt file (JSONL or CSV) on several models, checked and scored")
    p.add_argument("file", help="prompts: .jsonl (objects with a 'prompt', or strings) or .csv (a 'prompt' column)")
    p.add_argument("-m", "--model", dest="models", action="append", required=True, metavar="TAG")
    add_endpoint(p)
    add_assessment_arguments(p)
    p.add_argument("--min-pass", type=float, metavar="RATE",
                   help="exit 1 when a model passes less than RATE (0-1) of its answers")
    p.add_argument("--estimate", action="store_true", help="send nothing: print what the grid would cost")
    p.add_argument("--max-live", type=int, default=32, metavar="N", help="jobs live at once (default 32)")
    add_job_options(p)
    p.add_argument("--json", action="store_true", help="print a JSON array, one object per prompt × model")


def read_prompt_file(file: str) -> list[dict[str, Any]]:
    """The rows of a ``.jsonl`` or ``.csv`` prompt file, each with a ``prompt`` (ConfigError otherwise)."""
    path = Path(file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the prompt file {file}: {exc}") from None
    rows: list[dict[str, Any]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if "prompt" not in (reader.fieldnames or []):
            raise ConfigError(f"{file}: a CSV prompt file needs a 'prompt' column (it has: "
                              f"{', '.join(reader.fieldnames or []) or 'none'})")
        rows = [dict(row) for row in reader]
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"{file} line {number}: not JSON ({exc})") from None
            if isinstance(value, str):
                value = {"prompt": value}
            if not isinstance(value, dict) or "prompt" not in value:
                raise ConfigError(f"{file} line {number}: an object with a 'prompt', or a string")
            rows.append(value)
    else:
        raise ConfigError(f"{file}: a prompt file is .jsonl or .csv")
    if not rows:
        raise ConfigError(f"{file}: no prompts in it")
    return rows


def cmd_grid(args: argparse.Namespace) -> int:
    from ..core.grid import grid
    from ..core.scores import scores_table

    if args.min_pass is not None and not (0 <= args.min_pass <= 1):
        raise ConfigError(f"--min-pass is a share of the answers, 0-1, not {args.min_pass:g}")
    if args.min_pass is not None and not (args.check or args.judge):
        raise ConfigError("--min-pass needs --check or --judge: without them nothing passes or fails")
    rows = read_prompt_file(args.file)
    options = parse_assignments(args.option, what="--option", json_values=True) or None
    def said(line: str) -> None:
        print(line, file=sys.stderr)

    result = grid(rows, args.models, url=args.url, max_live=args.max_live, hours=args.hours, timeout=args.timeout,
                  system=args.system, options=options, estimate=args.estimate,
                  progress="text" if sys.stderr.isatty() else None,
                  announce=print if args.estimate else said, **assessments(args))
    if args.estimate:
        return 0
    scores = result.scores()
    if args.json:
        json.dump(result.rows(), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        print(scores_table(scores))
    code = 0 if result.ok else 1
    if args.min_pass is not None:
        under = [s for s in scores if (s["pass_rate"] or 0.0) < args.min_pass]
        for s in under:
            rate = "no verdicts" if s["pass_rate"] is None else f"{s['pass_rate']:.0%}"
            said(f"gridllm-nb: {s['model']} passed {rate}, under --min-pass {args.min_pass:g}")
        code = 1 if under else code
    return code
