"""Argument parsing for ``%%gridllm`` and ``%gridllm`` (argparse, with ``--help``).

Parsing never exits the kernel: a bad argument raises ``MagicArgsError`` (a
one-line ``ConfigError``), and ``--help`` prints the help and raises
``HelpShown`` so the magic simply stops.
"""

from __future__ import annotations

import argparse
import shlex
from typing import NoReturn

from ..display.render import FORMATS
from ..errors import ConfigError

__all__ = [
    "HelpShown",
    "MagicArgsError",
    "cell_parser",
    "line_parser",
    "parse_cell_line",
    "parse_line",
    "split_line",
]


class MagicArgsError(ConfigError):
    """A usage error in the magic's arguments."""


class HelpShown(Exception):
    """``--help`` (or ``help``) was asked for and printed; nothing else to do."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise MagicArgsError(f"{self.prog}: {message} (see {self.prog} --help)")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            print(message, end="")
        if status:
            raise MagicArgsError(f"{self.prog}: {(message or 'error').strip()}")
        raise HelpShown()


def _positive(kind: str, *, whole: bool = False):
    """An argparse type: a number > 0 (``whole``: an integer ≥ 1), with a one-line error naming ``kind``."""
    parse, noun, bound = (int, "a whole number", "≥ 1") if whole else (float, "a number", "> 0")

    def convert(value: str) -> float:
        try:
            number = parse(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{kind} must be {noun}, got {value!r}") from None
        if not number > 0:
            raise argparse.ArgumentTypeError(f"{kind} must be {bound}, got {value!r}")
        return number

    convert.__name__ = kind
    return convert


def _identifier(value: str) -> str:
    if not value.isidentifier():
        raise argparse.ArgumentTypeError(f"not a Python name: {value!r}")
    return value


CELL_EPILOG = """\
The cell body is the prompt. {name} becomes the value of a variable defined
in the notebook (also {In[3]} and {Out[3]}); {{ and }} give literal braces;
any other brace text (code, JSON) stays as written.

--system and --option are sent inside commandLine: an extension that the
local service honours (options: max_tokens, temperature, seed, top_p, stop)
and the public grid ignores.

examples:
  %%gridllm smollm2:135m gemma3:270m
  %%gridllm smollm2:135m --option max_tokens=64 --option temperature=0 --out r
  %%gridllm smollm2:135m --format code --system "Answer with Python code only."
  %%gridllm smollm2:135m gemma3:270m --over questions --out grid
  Answer in one sentence: {item}
  %%gridllm smollm2:135m gemma3:270m --arena
"""


def cell_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="%%gridllm",
        description="Send the cell to several models at once; each answer streams into its own output.",
        epilog=CELL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=True,
    )
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="model tags, e.g. smollm2:135m gemma3:270m (default: c.GridLLM.default_models)")
    p.add_argument("--hours", type=_positive("--hours"), metavar="H",
                   help="runtime limit per job in hours (service default: 1)")
    p.add_argument("--timeout", type=_positive("--timeout"), metavar="S",
                   help="stop waiting after S seconds; unfinished jobs end 'timed out' with their text kept")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="how the final answers show: markdown (default), text, code (the fenced code "
                        "extracted) or json (parsed)")
    p.add_argument("--no-wait", action="store_true",
                   help="return at once; the outputs keep streaming while you run other cells")
    p.add_argument("--no-interpolate", action="store_true",
                   help="send the cell body exactly as written ({name} is not replaced)")
    p.add_argument("--url", metavar="BASE",
                   help="API base URL (default: $GRIDLLM_API_URL, else the local service)")
    p.add_argument("--system", metavar="TEXT", help="system prompt (local-service extension)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="generation option, JSON value, e.g. max_tokens=64 (local-service extension); repeatable")
    p.add_argument("--out", type=_identifier, metavar="NAME",
                   help="also store the Results in this variable")
    p.add_argument("--over", type=_identifier, metavar="NAME",
                   help="a prompt × model grid: one job per element of the list NAME and model; the cell is "
                        "a template where {item} is the element (and a dict element's keys are names)")
    p.add_argument("--max-live", type=_positive("--max-live", whole=True), default=32, metavar="N",
                   help="with --over: at most N jobs submitted and unfinished at once (default 32)")
    p.add_argument("--arena", action="store_true",
                   help="blind arena: 2 or 3 models shown as A, B, C in a shuffled order; vote under the "
                        "answers to see the names (votes feed %%gridllm leaderboard)")
    p.add_argument("--check", action="append", default=[], metavar="SPEC",
                   help="check every answer as it ends: contains:TEXT, icontains:TEXT, not-contains:TEXT, "
                        "equals:TEXT, regex:PATTERN, json, json-schema:FILE, max-words:N; with --over, "
                        "{column} reads the element's own value (contains:{expected})")
    p.add_argument("--judge", action="append", default=[], metavar="MODEL[:RUBRIC]",
                   help="a model grades every answer 0-10 by the rubric, as a job on the same service")
    p.add_argument("--estimate", action="store_true",
                   help="with --over: send nothing, print the grid's jobs, tokens and time from the history")
    return p


LINE_EPILOG = """\
examples:
  %gridllm models
  %gridllm config url=http://127.0.0.1:8765/remotejobs/v2 default_models=smollm2:135m,gemma3:270m
  %gridllm status 9f22472031ef57c3fd517061d116ad68
  %gridllm local start
  %gridllm history 5
  %gridllm attach 3f2a9c1d        (after a kernel restart: the run's jobs, live again)
  %gridllm retry                  (the newest run's failed models, submitted again)
  %gridllm arena
  %gridllm leaderboard --method elo --mine   (Elo instead of Bradley–Terry; only your votes)
"""


def line_parser() -> argparse.ArgumentParser:
    from ..core.ratings import add_leaderboard_arguments  # loaded when a line is parsed, not with the extension

    p = _Parser(
        prog="%gridllm",
        description="Manage models, jobs, configuration, the local service and the history.",
        epilog=LINE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    s = sub.add_parser("models", help="list the service's models (local ones marked)")
    s.add_argument("--url", metavar="BASE")
    for name, text in (("status", "show jobs' state"), ("cancel", "cancel jobs (local-service extension)")):
        s = sub.add_parser(name, help=text)
        s.add_argument("ids", nargs="+", metavar="ID")
        s.add_argument("--url", metavar="BASE")
    s = sub.add_parser("config", help="show the configuration, or set KEY=VALUE for this session")
    s.add_argument("settings", nargs="*", metavar="KEY=VALUE")
    s = sub.add_parser("local", help="the embedded local service")
    s.add_argument("action", choices=("start", "stop", "status"))
    s.add_argument("--port", type=int, default=None)
    s = sub.add_parser("history", help="recent runs from the local history file, with their ids")
    s.add_argument("n", nargs="?", type=_positive("N", whole=True), default=10)
    for name, text in (("attach", "follow a run's jobs again (after a kernel restart), as live cards"),
                       ("retry", "submit a run's failed, lost, cancelled or timed-out models again")):
        s = sub.add_parser(name, help=text)
        s.add_argument("run", nargs="?", metavar="RUN",
                       help="a run id, or its first characters, from %%gridllm history (default: the newest run)")
        s.add_argument("--url", metavar="BASE", help="API base URL (default: the one the run used)")
        s.add_argument("--timeout", type=_positive("--timeout"), metavar="S",
                       help="stop waiting after S seconds; jobs still going end 'timed out'")
    sub.add_parser("panel", help="the interactive widget panel")
    sub.add_parser("arena", help="the panel as a blind arena: models shown as A, B, C until you vote")
    s = sub.add_parser("leaderboard", help="the blind arena's ranking (Bradley–Terry, shared ranks) from the stored "
                                           "votes; --method elo, --mine")
    add_leaderboard_arguments(s)
    sub.add_parser("help", help="this help")
    return p


def split_line(line: str) -> list[str]:
    try:
        return shlex.split(line, posix=True)
    except ValueError as exc:
        raise MagicArgsError(f"cannot parse the magic's arguments: {exc}") from None


def parse_cell_line(line: str) -> argparse.Namespace:
    return cell_parser().parse_args(split_line(line))


def parse_line(line: str) -> argparse.Namespace:
    parser = line_parser()
    args = parser.parse_args(split_line(line))
    if args.command in (None, "help"):
        parser.print_help()
        raise HelpShown()
    return args
