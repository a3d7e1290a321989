"""``python -m gridllm_nb.service``: the same serving as ``gridllm-nb serve``."""

from __future__ import annotations

import argparse
import sys

from .server import add_serve_arguments, serve_from_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gridllm_nb.service", description="Serve the local jobs API.")
    add_serve_arguments(parser)
    return serve_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
