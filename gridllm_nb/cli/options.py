"""The options several ``gridllm-nb`` subcommands share, written once so they mean the same everywhere."""

from __future__ import annotations

import argparse

__all__ = ["add_endpoint", "add_job_options"]


def add_endpoint(p: argparse.ArgumentParser) -> None:
    """``--url``: where the jobs go (default: the configured endpoint, else the local service)."""
    p.add_argument("--url", help="API base, e.g. https://api.gridrepublic.services/remotejobs/v2")


def add_job_options(p: argparse.ArgumentParser) -> None:
    """What goes with each job: ``--hours``, ``--timeout``, ``--system``, ``--option KEY=VALUE``."""
    p.add_argument("--hours", type=float, help="runtime limit per job (service default: 1)")
    p.add_argument("--timeout", type=float, help="give up waiting after S seconds")
    p.add_argument("--system", help="system prompt (local-service extension)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="generation option, e.g. max_tokens=64 (local-service extension)")
