"""The embedded local jobs service: the remotejobs v2 API served on this machine.

It exists so that users without a GridRepublic token, Binder demos and the
test-suite all talk to the same API with real inference. The layers, bottom up:
``registry`` (tag -> backend settings), ``backends`` (tokens from a model),
``store`` (SQLite persistence), ``jobs`` (queue, workers, deadlines, cancel),
``app`` (HTTP), ``server``/``launcher`` (process management).

Nothing here imports the client-side front ends; import the heavy parts
(FastAPI, llama.cpp) from their modules, not from this package.
"""

from __future__ import annotations

API_PREFIX = "/remotejobs/v2"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}{API_PREFIX}"

__all__ = ["API_PREFIX", "DEFAULT_HOST", "DEFAULT_PORT", "DEFAULT_URL"]
