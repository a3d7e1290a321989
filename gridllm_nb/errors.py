"""One exception family, so callers can catch ``GridLLMError`` and show one line.

Every message is a single line a notebook user can act on; none ever holds
the API token (the client scrubs it before raising).
"""

from __future__ import annotations

from .text import one_line

__all__ = [
    "APIError",
    "AuthError",
    "CellError",
    "ConfigError",
    "GridLLMError",
    "Interrupted",
    "NotSupported",
    "ProtocolError",
    "RateLimited",
    "ServiceUnreachable",
    "TransportError",
    "UnknownModel",
]


class GridLLMError(Exception):
    """Base of every error gridllm_nb raises on purpose."""

    def __init__(self, message: str) -> None:
        # Collapse to one line: these end up in a notebook cell or a terminal.
        super().__init__(one_line(message))

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(GridLLMError):
    """Bad usage or configuration: a missing model, an empty prompt, a bad URL."""


class APIError(GridLLMError):
    """The service answered ``success: false``; carries the server's message."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class UnknownModel(APIError):
    """The service does not serve this tag; ``available`` lists the ones it does."""

    def __init__(self, message: str, *, tag: str = "", available: list[str] | None = None) -> None:
        super().__init__(message, status_code=400)
        self.tag = tag
        self.available = list(available or [])


class AuthError(GridLLMError):
    """401/403: the token is missing, wrong or expired."""


class RateLimited(GridLLMError):
    """429 that outlived the retry budget."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TransportError(GridLLMError):
    """The service could not be reached or the connection broke."""


class ServiceUnreachable(TransportError):
    """Nothing answered at the address (the connection itself failed).

    Distinct from a slow or broken answer: only this one may mean the local
    service is gone, and is worth starting it again.
    """


class ProtocolError(GridLLMError):
    """The service answered something other than the JSON the API promises."""


class NotSupported(GridLLMError):
    """The endpoint does not offer this (e.g. cancel or models on the real grid)."""


class CellError(Exception):
    """An expected failure in a notebook cell, shown as one red line (``_render_traceback_``,
    IPython's hook), never a traceback.

    Raising it (rather than printing) marks the cell as failed, so "Run all"
    stops there, as it does for any failing cell.
    """

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31mgridllm: {self}\x1b[0m"]


class Interrupted(CellError):
    """The run was interrupted; the partial outputs are kept."""
