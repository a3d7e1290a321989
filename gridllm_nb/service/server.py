"""Command-line serving: shared by ``gridllm-nb serve`` and ``python -m gridllm_nb.service``.

Binds 127.0.0.1 by default and refuses any other host without a token: the
service runs models on behalf of whoever can reach it.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
from pathlib import Path

from . import API_PREFIX, DEFAULT_HOST, DEFAULT_PORT

__all__ = ["add_serve_arguments", "default_db_path", "is_loopback", "serve_from_args"]


def default_db_path() -> Path:
    """``$GRIDLLM_DB``, else ``$XDG_DATA_HOME/gridllm_nb/jobs.sqlite3`` (~/.local/share)."""
    if os.environ.get("GRIDLLM_DB"):
        return Path(os.environ["GRIDLLM_DB"]).expanduser()
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "gridllm_nb" / "jobs.sqlite3"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=DEFAULT_HOST, help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 8765)")
    parser.add_argument("--db", default=None, help="SQLite file for jobs (env GRIDLLM_DB; default ~/.local/share/gridllm_nb/jobs.sqlite3)")
    parser.add_argument("--models", default=os.environ.get("GRIDLLM_MODELS"), help="model registry TOML (env GRIDLLM_MODELS)")
    parser.add_argument("--token", default=None, help="require 'Authorization: Bearer T' (env GRIDLLM_SERVICE_TOKEN)")
    parser.add_argument("--preload", action="store_true", help="load the models at start, not on first use")
    parser.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])


def serve_from_args(args: argparse.Namespace) -> int:
    """Run uvicorn until interrupted; 2 on a configuration error (one line on stderr)."""
    from ..errors import ConfigError

    token = args.token or os.environ.get("GRIDLLM_SERVICE_TOKEN") or None
    if not is_loopback(args.host) and not token:
        print(f"gridllm_nb serve: refusing to bind {args.host} without a token (use --token or GRIDLLM_SERVICE_TOKEN)",
              file=sys.stderr)
        return 2
    try:
        import uvicorn

        from .app import create_app
    except ImportError as exc:
        print(f"gridllm_nb serve: the local service needs its extras: pip install 'gridllm_nb[local]' ({exc})",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    db = Path(args.db).expanduser() if args.db else default_db_path()
    try:
        app = create_app(db=db, models=args.models or None, token=token, preload=getattr(args, "preload", False))
    except (ConfigError, OSError) as exc:
        print(f"gridllm_nb serve: {exc}", file=sys.stderr)
        return 2
    # 500 ids make a ~17 KB request line, over h11's 16 KB default: allow 64 KB so
    # such requests reach the app (and its JSON errors) instead of a bare 400.
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False,
                            h11_max_incomplete_event_size=64 * 1024)
    server = uvicorn.Server(config)
    models = ", ".join(app.state.registry)
    print(f"gridllm_nb: serving http://{args.host}:{args.port}{API_PREFIX} (models: {models}; jobs in {db})",
          file=sys.stderr, flush=True)
    server.run()
    return 0 if server.started else 2
