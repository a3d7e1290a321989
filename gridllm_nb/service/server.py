"""Command-line serving: shared by ``gridllm-nb serve`` and ``python -m gridllm_nb.service``.

Binds 127.0.0.1 by default and refuses any other host without a token: the
service runs models on behalf of whoever can reach it. The token comes from
``$GRIDLLM_SERVICE_TOKEN`` or ``--token-file`` (``--token T`` works too,
with a warning: every local user can read it in ``ps``).
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import sys
from pathlib import Path

from ..config import API_PREFIX, DEFAULT_HOST, DEFAULT_PORT, is_loopback
from ..errors import ConfigError
from .http.guards import DEFAULT_HEADER_TIMEOUT, DEFAULT_MAX_WAITING
from .manager import DEFAULT_KEEP_DAYS, DEFAULT_MAX_QUEUED
from .state import default_db_path, forget_state

__all__ = ["add_serve_arguments", "read_token", "serve_from_args"]


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The serving options, for ``gridllm-nb serve`` and ``python -m gridllm_nb.service`` alike."""
    parser.add_argument("--host", default=DEFAULT_HOST, help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 8765)")
    parser.add_argument("--db", default=None, help="SQLite file for jobs (env GRIDLLM_DB; default ~/.local/share/gridllm_nb/jobs.sqlite3)")
    parser.add_argument("--models", default=os.environ.get("GRIDLLM_MODELS"), help="model registry TOML (env GRIDLLM_MODELS)")
    parser.add_argument("--token-file", default=None, metavar="PATH",
                        help="require 'Authorization: Bearer T', T read from PATH (or env GRIDLLM_SERVICE_TOKEN)")
    parser.add_argument("--token", default=None, help="the token itself: visible to every user in `ps`; prefer "
                        "--token-file or GRIDLLM_SERVICE_TOKEN")
    parser.add_argument("--preload", action="store_true", help="load the models at start, not on first use")
    parser.add_argument("--idle-timeout", type=float, default=None, metavar="SECONDS",
                        help="stop after SECONDS with no live job and no request (default: never; the "
                             "auto-started background service uses $GRIDLLM_IDLE_TIMEOUT, else 1800)")
    parser.add_argument("--max-queued", type=int, default=DEFAULT_MAX_QUEUED, metavar="N",
                        help=f"waiting jobs accepted at most; past it POST /jobs answers 429 (default {DEFAULT_MAX_QUEUED})")
    parser.add_argument("--keep", type=float, default=DEFAULT_KEEP_DAYS, metavar="DAYS",
                        help=f"forget finished jobs older than DAYS (default {DEFAULT_KEEP_DAYS:g}; 0 keeps them forever)")
    parser.add_argument("--header-timeout", type=float, default=DEFAULT_HEADER_TIMEOUT, metavar="SECONDS",
                        help=f"close a connection whose request headers take longer (default {DEFAULT_HEADER_TIMEOUT:g})")
    parser.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])


def serve_from_args(args: argparse.Namespace) -> int:
    """Run uvicorn until interrupted; 2 on a configuration error (one line on stderr)."""
    try:
        token = read_token(args)
    except ConfigError as exc:
        print(f"gridllm_nb serve: {exc}", file=sys.stderr)
        return 2
    if not is_loopback(args.host) and not token:
        print(f"gridllm_nb serve: refusing to bind {args.host} without a token "
              "(use --token-file or GRIDLLM_SERVICE_TOKEN)", file=sys.stderr)
        return 2
    try:
        import uvicorn

        from .http.app import create_app
        from .http.guards import guarded_protocol
    except ImportError as exc:
        print(f"gridllm_nb serve: the local service needs its extras: pip install 'gridllm_nb[local]' ({exc})",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    db = Path(args.db).expanduser() if args.db else default_db_path()
    idle = getattr(args, "idle_timeout", None)
    idle = idle if idle and idle > 0 else None
    faulthandler.enable()  # a crash in native code leaves its cause in the log the launcher quotes
    try:
        app = create_app(db=db, models=args.models or None, token=token, preload=getattr(args, "preload", False),
                         idle_timeout=idle, max_queued=args.max_queued, keep_days=args.keep or None)
    except (ConfigError, OSError) as exc:
        print(f"gridllm_nb serve: {exc}", file=sys.stderr)
        return 2
    # 500 ids make a ~17 KB request line, over h11's 16 KB default: allow 64 KB so
    # such requests reach the app (and its JSON errors) instead of a bare 400.
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False,
                            h11_max_incomplete_event_size=64 * 1024,
                            http=guarded_protocol(args.header_timeout, DEFAULT_MAX_WAITING))
    server = uvicorn.Server(config)
    watch = getattr(app.state, "idle", None)
    if watch is not None:
        watch.on_idle = lambda: setattr(server, "should_exit", True)
    models = ", ".join(app.state.registry)
    stops = f"; stops after {idle:g} s idle" if idle else ""
    print(f"gridllm_nb: serving http://{args.host}:{args.port}{API_PREFIX} (models: {models}; jobs in {db}{stops})",
          file=sys.stderr, flush=True)
    # uvicorn shuts down cleanly on SIGTERM, then re-raises it so the default
    # action would end the process "killed by SIGTERM"; a clean stop is exit 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run()
    finally:
        _forget_own_state(args.port)
    if watch is not None and watch.fired:
        print(f"gridllm_nb: idle for {idle:g} s: stopped", file=sys.stderr, flush=True)
    return 0 if server.started else 2


def read_token(args: argparse.Namespace) -> str | None:
    """The service token: ``--token-file``, else ``$GRIDLLM_SERVICE_TOKEN``, else ``--token`` (warned)."""
    if getattr(args, "token_file", None):
        path = Path(args.token_file).expanduser()
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the token file {path}: {exc.strerror or exc}") from None
        if not token:
            raise ConfigError(f"the token file {path} is empty")
        return token
    if os.environ.get("GRIDLLM_SERVICE_TOKEN"):
        return os.environ["GRIDLLM_SERVICE_TOKEN"]
    if args.token:
        print("gridllm_nb serve: warning: --token shows the token to every user of this machine (ps); "
              "use --token-file or GRIDLLM_SERVICE_TOKEN", file=sys.stderr)
        return str(args.token)
    return None


def _forget_own_state(port: int) -> None:
    """A background service that ends removes its state file (if it names this process)."""
    try:
        forget_state(port, pid=os.getpid())
    except Exception as exc:  # noqa: BLE001 - never turn a clean exit into a crash
        print(f"gridllm_nb: state file not removed: {exc}", file=sys.stderr)
