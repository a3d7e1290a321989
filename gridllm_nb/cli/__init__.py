"""gridllm-nb: the terminal front end over the shared runner and client.

Exit codes: 0 every job completed; 1 any job failed, was cancelled, timed
out or was lost (its partial text is still printed); 2 usage or
configuration errors, always as one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ..api.client import JobsClient
from ..config import mask_credentials, parse_assignments
from ..core.ratings import add_leaderboard_arguments
from ..core.results import Results
from ..display.textstream import TextStream
from ..errors import ConfigError, GridLLMError
from .grid import add_assessment_arguments, add_grid_parser, assessments, cmd_grid
from .options import add_endpoint, add_job_options

if TYPE_CHECKING:
    from ..core.grid import GridResults

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every usage error; a URL's password masked
        self.exit(2, f"{self.prog}: error: {mask_credentials(message)}\n")


def _port(text: str) -> int:
    """A TCP port, 1-65535 (argparse's ``type``: anything else is a usage error)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port {port} is not in 1-65535")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gridllm-nb", description="Send prompts to several LLMs through the remote jobs API.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("run", help="run one prompt on several models in parallel")
    p.add_argument("prompt", help="the prompt ('-' reads stdin)")
    p.add_argument("-m", "--model", dest="models", action="append", required=True, metavar="TAG")
    add_endpoint(p)
    add_job_options(p)
    p.add_argument("--json", action="store_true", help="print a JSON array of results")
    add_assessment_arguments(p)
    add_grid_parser(sub)

    p = sub.add_parser("submit", help="submit a job and print its id")
    p.add_argument("prompt")
    p.add_argument("-m", "--model", required=True, metavar="TAG")
    add_endpoint(p)
    p.add_argument("--hours", type=float)

    for name, text in (("status", "show jobs' status"), ("watch", "stream jobs until they end"),
                       ("cancel", "cancel jobs (local-service extension)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("ids", nargs="+", metavar="ID")
        add_endpoint(p)
        if name == "status":
            p.add_argument("--json", action="store_true")

    p = sub.add_parser("models", help="list the models the service offers")
    add_endpoint(p)

    p = sub.add_parser("serve", help="run the embedded local jobs service")
    try:
        from ..core.local import add_serve_arguments

        add_serve_arguments(p)
    except ImportError:  # pragma: no cover - extras missing
        p.set_defaults(serve_missing=True)

    p = sub.add_parser("local", help="the background local service: start, stop or status")
    p.add_argument("action", choices=("start", "stop", "status"))
    p.add_argument("--port", type=_port, default=None, help="its port (default: the local URL's, 8765)")

    p = sub.add_parser("history", help="the last runs of the local history, with the ids attach and retry take")
    p.add_argument("n", nargs="?", type=int, default=10, help="how many runs (default 10)")
    for name, text in (("attach", "follow a run's jobs again (after a restart) until they end"),
                       ("retry", "submit a run's failed, lost, cancelled or timed-out models again")):
        p = sub.add_parser(name, help=text)
        p.add_argument("run", nargs=None if name == "retry" else "?", metavar="RUN",
                       help="a run id, or its first characters, from `gridllm-nb history`"
                            + ("" if name == "retry" else " (default: the newest run)"))
        p.add_argument("--url", help="API base (default: the one the run used)")
        p.add_argument("--timeout", type=float, help="give up waiting after S seconds")
        p.add_argument("--json", action="store_true", help="print a JSON array of results")

    p = sub.add_parser("leaderboard", help="the blind arena's ranking (Bradley–Terry) from the votes in the history")
    add_leaderboard_arguments(p)
    p = sub.add_parser("votes", help="the arena's votes as CSV on stdout, or --export FILE (.csv or .json)")
    p.add_argument("--export", metavar="FILE", help="write them to FILE: .csv or .json by its extension")
    p.add_argument("--mine", action="store_true", help="only the votes cast by this user")
    p = sub.add_parser("report", help="write a history run as one self-contained HTML file, safe to mail")
    p.add_argument("run", nargs="?", metavar="RUN",
                   help="a run id, or its first characters, from `gridllm-nb history` (default: the newest run)")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the HTML file to write")
    p = sub.add_parser("webui", help="serve the panel as a standalone web page (Voila)")
    p.add_argument("--port", type=_port, default=8866)
    add_endpoint(p)
    return parser


def _print_results(results: Results, out: TextIO) -> None:
    for r in results.values():
        out.write(f"== {r.tag} ({r.label}, {r.elapsed:.1f}s) ==\n")
        if r.text:
            out.write(r.text.rstrip("\n") + "\n")
        if r.error:
            out.write(f"error: {r.error}\n")


def _live_columns_wanted() -> bool:
    """Side-by-side live columns need a real terminal that can move its cursor."""
    import os

    return sys.stdout.isatty() and os.environ.get("TERM", "") != "dumb"


def _show(tags: Sequence[str], go: Callable[[Any, Callable[[str], None]], Results], as_json: bool,
          results: Results) -> int:
    """Run ``go(on_update, announce)``, which fills ``results``, with the terminal's live output, then
    print the answers.

    On a terminal the models stream live (side-by-side columns where the
    cursor can move, labelled lines elsewhere); piped, the answers are
    printed when they end, or as JSON. Exit 0 only when every model completed.
    """
    live = sys.stdout.isatty() and not as_json
    if live and _live_columns_wanted():
        # One column per model, redrawn in place; the full answers are printed when it ends.
        from .live import live_columns

        with live_columns(tags, results=results) as columns:
            results = go(columns, columns.notice)
        return 0 if results.ok else 1
    results = go(TextStream(sys.stdout) if live else None, lambda line: print(line, file=sys.stderr))
    if as_json:
        json.dump(results.to_list(), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    elif not live:
        _print_results(results, sys.stdout)
    return 0 if results.ok else 1


def _cmd_run(args: argparse.Namespace) -> int:
    from ..core.run import run

    prompt = _stdin_prompt() if args.prompt == "-" else args.prompt
    options = parse_assignments(args.option, what="--option", json_values=True) or None
    results = Results(prompt)
    return _show(args.models, lambda on_update, announce: run(
        prompt, args.models, url=args.url, hours=args.hours, timeout=args.timeout, system=args.system,
        options=options, on_update=on_update, announce=announce, results=results, **assessments(args)),
        args.json, results)


def _stdin_prompt() -> str:
    try:
        return sys.stdin.read()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"the prompt on stdin is not UTF-8 text (byte {exc.start})") from None


def _cmd_attach(args: argparse.Namespace) -> int:
    from ..core.commands import stored
    from ..core.run import aattach
    from ..core.sync import run_sync

    results = stored(args.run, url=args.url)
    if not isinstance(results, Results):  # a grid
        return _show_grid(run_sync(aattach(results, timeout=args.timeout, announce=_stderr)), args.json)
    return _show(list(results), lambda on_update, announce: run_sync(aattach(
        results, on_update=on_update, timeout=args.timeout, announce=announce)), args.json, results)


def _cmd_retry(args: argparse.Namespace) -> int:
    from ..core.commands import stored
    from ..core.history import short_id
    from ..core.run import aretry
    from ..core.sync import run_sync

    results = stored(args.run, url=args.url)
    if not isinstance(results, Results):  # a grid: every job that ended without an answer
        if not results.retryable:
            print(f"gridllm-nb: nothing to retry in grid {short_id(results.run_id or '')}: "
                  "no job failed, was lost, cancelled, timed out or was never sent", file=sys.stderr)
            return 0 if results.ok else 1
        return _show_grid(run_sync(aretry(results, timeout=args.timeout, announce=_stderr)), args.json)
    tags = results.retryable
    if not tags:
        print(f"gridllm-nb: nothing to retry in run {short_id(results.run_id or '')}: "
              "no model failed, was lost, cancelled or timed out", file=sys.stderr)
        return 0 if results.ok else 1
    return _show(tags, lambda on_update, announce: run_sync(aretry(
        results, tags, on_update=on_update, timeout=args.timeout, announce=announce)), args.json, results)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _show_grid(grid: GridResults, as_json: bool) -> int:
    """A grid attached or retried: its summary (or ``--json``: one object per prompt × model); exit 0
    only when every job completed."""
    if as_json:
        json.dump(grid.rows(), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        print(repr(grid))
    return 0 if grid.ok else 1


def _cmd_history(args: argparse.Namespace) -> int:
    from ..core import commands

    return commands.history(args.n, sys.stdout)


def _cmd_simple(args: argparse.Namespace) -> int:
    from ..api import arguments
    from ..core import commands

    out = sys.stdout
    if args.command in ("status", "watch", "cancel"):
        args.ids = arguments.job_ids(args.ids)
        if not args.ids:
            raise ConfigError("no job id given")

    async def submit(client: JobsClient) -> int:
        out.write(await client.submit(args.prompt, args.model, hours=args.hours) + "\n")
        return 0

    async def watch(client: JobsClient) -> int:
        from ..api.poller import get_poller

        poller = get_poller()
        streamer = TextStream(out)
        watches = [poller.follow(client, i, tag=i[:8]) for i in args.ids]

        async def follow(w: Any) -> bool:
            ok = False
            async for update in w:
                streamer(update)
                ok = update.state.value == "completed"
            return ok

        oks = await asyncio.gather(*(follow(w) for w in watches))
        return 0 if all(oks) else 1

    actions = {
        "submit": submit,
        "watch": watch,
        "status": lambda client: commands.status(client, args.ids, out, as_json=args.json),
        "cancel": lambda client: commands.cancel(client, args.ids, out),
        "models": lambda client: commands.models(client, out),
    }
    return commands.with_client(args.url, actions[args.command], announce=lambda line: print(line, file=sys.stderr))


def _cmd_serve(args: argparse.Namespace) -> int:
    if getattr(args, "serve_missing", False):
        raise ConfigError("the local service needs its extras: pip install 'gridllm_nb[local]'")
    from ..core.local import serve

    return serve(args)


def _cmd_local(args: argparse.Namespace) -> int:
    from ..config import resolve_endpoint
    from ..core.local import local, local_url

    token = resolve_endpoint().token
    return local(args.action, local_url(port=args.port), sys.stdout, token.reveal() if token else None)


def _cmd_webui(args: argparse.Namespace) -> int:
    from ..notebook.webui import serve_webui

    return serve_webui(port=args.port, url=args.url)


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from ..core.commands import leaderboard

    print(repr(leaderboard(args)))
    return 0


def _cmd_votes(args: argparse.Namespace) -> int:
    from ..core.votes import export, votes, write_csv

    found = votes(mine=args.mine)
    if args.export is None:
        write_csv(found, sys.stdout)
        return 0
    path = export(found, args.export)
    print(f"{len(found)} vote{'' if len(found) == 1 else 's'} written to {path}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from ..core.commands import stored

    print(f"report written to {stored(args.run).save_html(args.output)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"run": _cmd_run, "serve": _cmd_serve, "webui": _cmd_webui, "local": _cmd_local,
                "leaderboard": _cmd_leaderboard, "history": _cmd_history, "attach": _cmd_attach,
                "retry": _cmd_retry, "votes": _cmd_votes, "report": _cmd_report,
                "grid": cmd_grid}
    try:
        return handlers.get(args.command, _cmd_simple)(args)
    except BrokenPipeError:
        # The reader stopped reading (``gridllm-nb history | head -1``): it has what it wanted. Whatever is
        # still buffered goes nowhere, so Python's own flush at exit cannot fail with a traceback either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("gridllm-nb: interrupted", file=sys.stderr)
        return 130
    except ConfigError as exc:
        print(f"gridllm-nb: {exc}", file=sys.stderr)
        return 2
    except GridLLMError as exc:
        print(f"gridllm-nb: {exc}", file=sys.stderr)
        return 2 if args.command in ("run", "retry", "attach", "grid") else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
