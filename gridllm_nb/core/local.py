"""The one door from the client side to the embedded local service.

The default endpoint (nobody configured one) is a service on this machine
that the client starts itself. Everything the client side asks of it goes
through here: make sure it runs before a run, start it again when it dies
mid-run (once per outage), say why it stopped answering, and the
``local start|stop|status`` and ``serve`` commands. No other client module
imports ``gridllm_nb.service`` (an import-linter contract says so).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from typing import TextIO
from urllib.parse import urlsplit, urlunsplit

from ..api.client import JobsClient
from ..config import DEFAULT_LOCAL_URL, Endpoint, resolve_endpoint
from ..errors import ConfigError, TransportError

__all__ = ["add_serve_arguments", "ensure_running", "ensure_service", "local", "local_url", "open_client",
           "revivable", "serve", "unreachable"]

Announce = Callable[[str], None] | None


def _token(endpoint: Endpoint) -> str | None:
    return endpoint.token.reveal() if endpoint.token else None


def ensure_running(endpoint: Endpoint, announce: Announce = print) -> None:
    """The default endpoint is the local service: start it in the background if nobody has (blocking)."""
    if endpoint.is_default:
        from ..service import launcher

        launcher.ensure_local_service(endpoint.url, token=_token(endpoint), announce=announce)


async def ensure_service(client: JobsClient, announce: Announce = print) -> None:
    """Before a run: the default service started if nobody has, and ready to be started again."""
    if client.endpoint.is_default:
        await asyncio.to_thread(ensure_running, client.endpoint, announce)
        revivable(client)


def revivable(client: JobsClient) -> JobsClient:
    """Let ``client`` (on the default endpoint) start the local service again when it dies mid-run.

    The api layer knows nothing of the service: its poller calls the
    client's ``reviver``, which is this module's ``_revive``.
    """
    if client.endpoint.is_default:
        client.reviver = _revive
    return client


async def _revive(client: JobsClient) -> str | None:
    """Start the service again; what had happened to the old one when a new one answers, else None.

    Raises ConfigError when the new one could not start, saying both.
    """
    from ..service import launcher

    before = await asyncio.to_thread(launcher.diagnose, client.base_url)
    try:
        started = await asyncio.to_thread(launcher.ensure_local_service, client.base_url,
                                          token=_token(client.endpoint), announce=None)
    except ConfigError as exc:
        raise ConfigError(f"{before or 'the local service stopped answering'}; starting it again failed: "
                          f"{exc}") from None
    if started is None:
        return None
    return before or f"the local service at {client.base_url} had stopped"


def open_client(url: str | None = None, token: str | None = None, *, announce: Announce = print) -> JobsClient:
    """A client for ``url`` (default: the configured endpoint), its service started if it is ours to start."""
    endpoint = resolve_endpoint(url, token)
    ensure_running(endpoint, announce)
    return revivable(JobsClient(endpoint.url, endpoint.token))


async def unreachable(client: JobsClient, exc: TransportError) -> str:
    """Why nothing answers, in words that fit the endpoint.

    A service this user started in the background (the default endpoint, or
    a loopback URL with a state file) is described by what happened to its
    process and its log; anywhere else it is "cannot reach X" with advice
    for a URL someone chose.
    """
    if client.endpoint.is_local:
        from ..service import launcher

        what = await asyncio.to_thread(launcher.diagnose, client.base_url)
        if what:
            advice = "stop it with `gridllm-nb local stop`" if "does not answer" in what else "the next run starts it again"
            return f"{what}; {advice}"
        if client.endpoint.is_default:
            return f"{exc}; the local service is not running: `%gridllm local start` or `gridllm-nb serve` starts it"
    return f"{exc}; check the URL, the token and the network"


def local_url(url: str | None = None, port: int | None = None) -> str:
    """The loopback URL ``local`` acts on: ``url`` (or the configured one) if local, else the default."""
    endpoint = resolve_endpoint(url)
    chosen = endpoint.url if endpoint.is_local else DEFAULT_LOCAL_URL
    if port:
        p = urlsplit(chosen)
        chosen = urlunsplit((p.scheme, f"{p.hostname}:{port}", p.path, "", ""))
    return chosen


def local(action: str, url: str, out: TextIO, token: str | None = None) -> int:
    """``local start|stop|status``: the per-user background service, one short report."""
    from ..service.launcher import (
        ensure_local_service,
        is_running,
        read_state,
        stop_background_service,
        unreadable_state,
    )

    port = urlsplit(url).port or 80
    if action == "start":
        service = ensure_local_service(url, token=token, announce=None)
        if service is None:
            out.write(f"the local service is already running at {url}\n")
        else:
            out.write(f"started the local service at {service.url} in the background (pid {service.pid}; "
                      f"log {service.log_path})\n")
        return 0
    if action == "stop":
        said = stop_background_service(port)
        if said is None:
            where = ("something else answers there (a foreground `gridllm-nb serve`?): stop it where it runs"
                     if is_running(url, token) else "nothing is running there")
            out.write(f"no background local service at {url}; {where}\n")
        else:
            out.write(said + "\n")
        return 0
    state = read_state(port)
    running = is_running(url, token)
    if state is None:
        problem = unreadable_state(port)
        if problem:
            how = f"{'running' if running else 'not running'}, but {problem}"
        else:
            how = "running (not a background service: a foreground `gridllm-nb serve`?)" if running else "not running"
        out.write(f"local service at {url}: {how}\n")
        return 0 if running else 1
    out.write(f"local service: {'running' if running else 'NOT answering'}\n{state.describe()}\n")
    return 0 if running else 1



def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """``gridllm-nb serve``'s options: the service's own (``python -m gridllm_nb.service``)."""
    from ..service.server import add_serve_arguments as add

    add(parser)


def serve(args: argparse.Namespace) -> int:
    """``gridllm-nb serve``: the service in the foreground, until Ctrl-C; its exit status."""
    from ..service.server import serve_from_args

    return serve_from_args(args)
