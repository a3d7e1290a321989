"""The jobs API's wire format: ``commandLine`` encoded and decoded, JSON bodies, id lists, log joins.

The prompt travels as JSON inside a JSON string (``shared/API.md``): it is
built and read by a JSON encoder here, never by string formatting, so
quotes, backslashes, braces, non-ASCII and emoji survive the round trip.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import ConfigError, ProtocolError

try:  # optional: ``pip install gridllm_nb[fast]``; the stdlib decodes the same answers otherwise
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

__all__ = ["MAX_IDS_PER_GET", "MAX_URL_CHARS", "chunk_ids", "decode_command_line", "dumps_json",
           "encode_command_line", "join_log", "loads_json"]

MAX_IDS_PER_GET = 100
MAX_URL_CHARS = 4000

_DIGIT_MAP = bytes(48 if 48 <= c <= 57 else 46 for c in range(256))
_LONG_RUN = b"0" * 19


def _may_hold_a_long_integer(body: bytes) -> bool:
    """Whether the body may hold an integer past 64 bits, which orjson would make a float.

    A run of 19+ digits counts only where a JSON value starts (at the very start, or
    after ``[``, ``:`` or ``,``, white space and a minus sign), so the digits of hex ids
    inside strings cost nothing; a string that merely looks like that only sends the
    body to the stdlib decoder.
    """
    digits = body.translate(_DIGIT_MAP)
    start = digits.find(_LONG_RUN)
    while start != -1:
        i = start - 1
        if i >= 0 and body[i] == 45:  # "-"
            i -= 1
        while i >= 0 and body[i] in b" \t\n\r":
            i -= 1
        if i < 0 or body[i] in b"[:,":
            return True
        end = digits.find(b".", start)
        if end == -1:
            return False
        start = digits.find(_LONG_RUN, end)
    return False


def loads_json(body: bytes) -> Any:
    """Decode a JSON answer: orjson when installed, else (and wherever it could differ) the stdlib.

    What orjson refuses (not UTF-8, a BOM, NaN, 1e400, lone surrogates) goes to
    ``json.loads``; the one thing it accepts differently, an integer beyond 64 bits
    (a float to orjson, an int to the stdlib), is kept away by a scan for a number of
    19 digits or more. Every answer thus decodes exactly as ``httpx.Response.json()`` would,
    and a body neither takes raises ``ValueError``.
    """
    if _orjson is not None and not _may_hold_a_long_integer(body):
        try:
            return _orjson.loads(body)
        except _orjson.JSONDecodeError:
            pass
    return json.loads(body)

def dumps_json(value: dict[str, Any]) -> bytes:
    """Encode a request body as standard JSON (orjson where installed).

    Never ``NaN``/``Infinity`` nor a lone surrogate: what standard JSON in UTF-8
    cannot carry is a ``ConfigError`` here, before anything is sent.
    """
    if _orjson is not None:
        try:
            return _orjson.dumps(value)
        except _orjson.JSONEncodeError as exc:
            raise ConfigError(f"cannot send this as JSON: {_why(exc)}") from None
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError, UnicodeError) as exc:
        raise ConfigError(f"cannot send this as JSON: {_why(exc)}") from None


def _why(exc: Exception) -> str:
    if isinstance(exc, UnicodeError) or "surrogate" in str(exc):
        return "it holds text that is not valid Unicode (a lone surrogate)"
    if "float" in str(exc) or "nan" in str(exc).lower():
        return "it holds a number that is not finite (NaN or Infinity)"
    return str(exc)[:80]


def encode_command_line(
    prompt: str | Sequence[str],
    *,
    key: str = "inputs",
    system: str | None = None,
    options: dict[str, Any] | None = None,
) -> str:
    """The ``commandLine`` string: JSON inside JSON, built by an encoder, never by formatting.

    ``system`` and ``options`` are extensions that the embedded local service
    honours; the real grid ignores unknown keys. Standard JSON only: a NaN,
    an Infinity or a lone surrogate is a ``ConfigError``.
    """
    inputs = [prompt] if isinstance(prompt, str) else list(prompt)
    payload: dict[str, Any] = {key: inputs}
    if system:
        payload["system"] = system
    if options:
        payload["options"] = dict(options)
    try:
        encoded = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        encoded.encode("utf-8")
    except (TypeError, ValueError, UnicodeError, RecursionError) as exc:
        raise ConfigError(f"cannot send this job: {_why(exc)}") from None
    return encoded


def decode_command_line(command_line: str) -> tuple[str, str | None, str | None]:
    """(prompt, system, options as JSON text) of a job's ``commandLine``; ("", None, None) if unreadable.

    Reads both the documented form (``{"inputs": [...]}``) and the oldest page's ``input`` key.
    """
    try:
        payload = json.loads(command_line)
        inputs = payload.get("inputs", payload.get("input"))
        prompt = inputs[0] if isinstance(inputs, list) and inputs and isinstance(inputs[0], str) else ""
        system = payload.get("system") if isinstance(payload.get("system"), str) else None
        options = payload.get("options")
        return prompt, system, json.dumps(options, sort_keys=True) if isinstance(options, dict) else None
    except (ValueError, AttributeError, TypeError):
        return "", None, None


def chunk_ids(ids: Iterable[str], *, base_len: int = 0, max_ids: int = MAX_IDS_PER_GET) -> list[list[str]]:
    """Split ids into GET-sized batches: at most ``max_ids`` and a URL under 4 KB."""
    budget = MAX_URL_CHARS - base_len - len("/jobs/")
    chunks: list[list[str]] = []
    current: list[str] = []
    used = 0
    for job_id in ids:
        cost = len(job_id) + (1 if current else 0)
        if current and (len(current) >= max_ids or used + cost > budget):
            chunks.append(current)
            current, used, cost = [], 0, len(job_id)
        current.append(job_id)
        used += cost
    if current:
        chunks.append(current)
    return chunks


def join_log(job_id: str, entry: Any, have: str) -> Any:
    """A brief entry made whole: its ``log`` continues ``have`` from character ``logFrom`` on."""
    try:
        inner = entry["states"]["default"]
        start = inner.pop("logFrom", None)
    except (KeyError, TypeError, AttributeError):
        return entry
    if isinstance(start, int) and start > 0:
        if start > len(have):
            raise ProtocolError(f"the status answer continues job {job_id}'s log past what was asked")
        tail = inner.get("log")
        tail = tail if isinstance(tail, str) else ""
        # The same string object when nothing grew: the poller's "unchanged" check is then instant.
        inner["log"] = have if not tail and start == len(have) else have[:start] + tail
    return entry
