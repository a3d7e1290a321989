"""The ``commandLine`` field: a string that itself holds the job's inputs.

Accepted (the oldest page's form first): the Python literal
``"{'input': ['When does 1+1=10?'] }"`` (parsed with ``ast.literal_eval``,
never ``eval``), and JSON with ``input`` or ``inputs``. Local extensions inside
the same object: ``system`` (a system prompt) and ``options``
(``max_tokens``/``num_predict``, ``temperature``, ``top_p``, ``seed``, ``stop``,
``repeat_penalty``, ``template``: a completion frame holding ``{prompt}``).
Each job echoes its own input back as compact JSON, ``{"inputs":["..."]}``,
as the service's status answers do.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_INPUTS", "MAX_INPUT_BYTES", "CommandLine", "CommandLineError", "parse_command_line"]

MAX_INPUT_BYTES = 32 * 1024
MAX_INPUTS = 100
MAX_STOP = 8


class CommandLineError(ValueError):
    """One-line reason; ``status`` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class CommandLine:
    inputs: tuple[str, ...]
    system: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def echo(self, prompt: str) -> str:
        """The one-job commandLine a status answer shows (compact, like the seed)."""
        obj: dict[str, Any] = {"inputs": [prompt]}
        if self.system is not None:
            obj["system"] = self.system
        if self.options:
            obj["options"] = self.options
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _check_text(value: str, what: str, limit: int = MAX_INPUT_BYTES) -> None:
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise CommandLineError(f"{what} is not valid Unicode (lone surrogate)") from None
    if size > limit:
        raise CommandLineError(f"{what} is {size} bytes; the limit is {limit}", status=413)


def _parse_object(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise CommandLineError(
            "commandLine is neither JSON nor a Python literal; expected "
            '{"inputs": ["<prompt>"]}'
        ) from None


def _number(options: dict[str, Any], key: str, lo: float, hi: float, integer: bool) -> Any:
    value = options[key]
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not (lo <= value <= hi):
        kind = "an integer" if integer else "a number"
        raise CommandLineError(f"options.{key} must be {kind} from {lo:g} to {hi:g}, got {value!r}"[:300])
    return int(value) if integer else float(value)


def _parse_options(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise CommandLineError("commandLine 'options' must be an object")
    raw = dict(raw)
    if "num_predict" in raw:  # Ollama's name for max_tokens
        if "max_tokens" in raw:
            raise CommandLineError("give options.max_tokens or options.num_predict, not both")
        raw["max_tokens"] = raw.pop("num_predict")
    allowed = ("max_tokens", "temperature", "top_p", "seed", "stop", "repeat_penalty", "template")
    unknown = [str(k) for k in raw if k not in allowed]
    if unknown:
        raise CommandLineError(f"unknown option {unknown[0]!r}"[:200] + f"; allowed: {', '.join(allowed)}, num_predict")
    out: dict[str, Any] = {}
    if "max_tokens" in raw:
        out["max_tokens"] = _number(raw, "max_tokens", 1, 32768, True)
    if "temperature" in raw:
        out["temperature"] = _number(raw, "temperature", 0, 5, False)
    if "top_p" in raw:
        out["top_p"] = _number(raw, "top_p", 0, 1, False)
    if "seed" in raw:
        out["seed"] = _number(raw, "seed", 0, 2**32 - 1, True)
    if "repeat_penalty" in raw:
        out["repeat_penalty"] = _number(raw, "repeat_penalty", 0, 3, False)
    if "template" in raw:
        template = raw["template"]
        if not isinstance(template, str) or (template and "{prompt}" not in template):
            raise CommandLineError("options.template must be a string holding {prompt}, or \"\" for none")
        _check_text(template, "options.template", 4096)
        out["template"] = template
    if "stop" in raw:
        stop = raw["stop"]
        stop = [stop] if isinstance(stop, str) else stop
        if not isinstance(stop, list) or len(stop) > MAX_STOP or not all(isinstance(s, str) and s for s in stop):
            raise CommandLineError(f"options.stop must be a list of at most {MAX_STOP} non-empty strings")
        for s in stop:
            _check_text(s, "a stop string", 256)
        out["stop"] = stop
    return out


def parse_command_line(text: str, *, max_input_bytes: int = MAX_INPUT_BYTES) -> CommandLine:
    """Validate everything a job needs from ``commandLine``; raise CommandLineError otherwise."""
    if not text.strip():
        raise CommandLineError("commandLine is empty; expected {\"inputs\": [\"<prompt>\"]}")
    obj = _parse_object(text.strip())
    if not isinstance(obj, dict):
        raise CommandLineError('commandLine must hold an object: {"inputs": ["<prompt>"]}')
    if "inputs" in obj and "input" in obj:
        raise CommandLineError("commandLine has both 'input' and 'inputs'; give one")
    if "inputs" not in obj and "input" not in obj:
        raise CommandLineError("commandLine has no 'inputs' (or 'input') array")
    inputs = obj.get("inputs", obj.get("input"))
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, (list, tuple)) or not inputs:
        raise CommandLineError("commandLine 'inputs' must be a non-empty array of strings")
    if len(inputs) > MAX_INPUTS:
        raise CommandLineError(f"commandLine has {len(inputs)} inputs; the limit is {MAX_INPUTS}")
    for n, item in enumerate(inputs, 1):
        if not isinstance(item, str):
            raise CommandLineError(f"input {n} is not a string")
        if not item.strip():
            raise CommandLineError(f"input {n} is empty")
        _check_text(item, f"input {n}", max_input_bytes)
    system = obj.get("system")
    if system is not None:
        if not isinstance(system, str):
            raise CommandLineError("commandLine 'system' must be a string")
        _check_text(system, "the system prompt", max_input_bytes)
    options = _parse_options(obj.get("options", {}))
    return CommandLine(tuple(inputs), system, options)
