"""The public entry points' arguments, checked: a wrong argument is one ``ConfigError`` naming it.

Python callers pass whatever they have (a number for a prompt, a string for
options, NaN for hours), and so does a terminal through argparse. Each public
entry point (``run``/``grid``/``attach``, ``Results.retry``, ``JobsClient``,
the CLI) runs its arguments through these once, before anything is sent, so
what reaches a user is always one line that says which argument was wrong
and what it should have been, never an error from deep inside httpx or json.
Text must be valid Unicode (a lone surrogate cannot travel as UTF-8), numbers
finite, options standard JSON.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from ..errors import ConfigError

__all__ = ["callback", "choice", "flag", "id_list", "instance", "job_ids", "models", "number", "optional_text", "options",
           "text", "unicode", "whole"]

T = TypeVar("T")

_JOB_ID = re.compile(r"[0-9a-fA-F]{32}")


def _kind(value: object) -> str:
    return type(value).__name__


def unicode(value: str, name: str) -> str:
    """``value`` when it is valid Unicode text (encodable as UTF-8); else where it is not."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(f"{name} is not valid Unicode text: a lone surrogate "
                          f"({value[exc.start]!r}) at character {exc.start}") from None
    return value


def text(value: object, name: str, *, what: str = "", empty: bool = False) -> str:
    """Valid text, not blank unless ``empty``; ``what`` says how to give it (in the "empty" message)."""
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be text (a str), not {_kind(value)}")
    if not empty and not value.strip():
        raise ConfigError(f"empty {name}" + (f": {what}" if what else ""))
    return unicode(value, name)


def optional_text(value: object, name: str) -> str | None:
    """None, or valid text (empty allowed)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be text (a str) or None, not {_kind(value)}")
    return unicode(value, name)


def models(value: object) -> list[str]:
    """One tag or a list of tags: stripped, empty ones dropped, duplicates once, at least one."""
    if isinstance(value, str):
        items: list[object] = [value]
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        items = list(value)
    else:
        raise ConfigError(f"models must be a tag or a list of tags (str), not {_kind(value)}")
    tags = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"models must be tags (str); got {_kind(item)} {item!r:.40}")
        if item.strip():
            tags.append(unicode(item.strip(), "model tag"))
    if not tags:
        raise ConfigError("no model given: name at least one, e.g. smollm2:135m")
    return list(dict.fromkeys(tags))


def number(value: object, name: str, *, positive: bool = True, unit: str = "", optional: bool = True) -> float | None:
    """None (when ``optional``), or a finite number, > 0 (``positive``) or ≥ 0; ``unit`` says what it counts
    (seconds, or hours for ``hours``, unless given)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        unit = unit or ("hours" if name == "hours" else "seconds")
        raise ConfigError(f"{name} must be a number of {unit}{' or None' if optional else ''}, not {_kind(value)}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite:
        raise ConfigError(f"{name} must be a finite number, not {value!r:.40}")
    if value < 0 or (positive and value == 0):
        raise ConfigError(f"{name} must be {'more than' if positive else 'at least'} 0, not {value!r}")
    return float(value)


def options(value: object) -> dict[str, Any] | None:
    """None, or a mapping of option names to standard JSON values (no NaN, no Infinity), valid text throughout."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"options must be a dict such as {{'max_tokens': 64}}, not {_kind(value)}")
    for key in value:
        if not isinstance(key, str):
            raise ConfigError(f"options: every name must be text (a str), not {_kind(key)} {key!r:.40}")
    try:
        encoded = json.dumps(dict(value), allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ConfigError(f"options must be standard JSON values (numbers, text, lists, true/false/null; "
                          f"no NaN or Infinity): {str(exc)[:80]}") from None
    unicode(encoded, "options")
    return dict(value)


def whole(value: object, name: str, *, least: int = 1) -> int:
    """A whole number ≥ ``least`` (True and False are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number ≥ {least}, not {_kind(value)}")
    if value < least:
        raise ConfigError(f"{name} must be a whole number ≥ {least}, not {value}")
    return value


def flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, not {_kind(value)}")
    return value


def choice(value: object, name: str, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, allowed))}, not {value!r:.40}")
    return value


def callback(value: T, name: str) -> T:
    """None, or something callable."""
    if value is not None and not callable(value):
        raise ConfigError(f"{name} must be a function or None, not {_kind(value)}")
    return value


def instance(value: T, name: str, kind: type | tuple[type, ...], what: str) -> T:
    """None, or an instance of ``kind`` (``what`` names it in the message)."""
    if value is not None and not isinstance(value, kind):
        raise ConfigError(f"{name} must be {what} or None, not {_kind(value)}")
    return value


def id_list(values: object, name: str = "ids") -> list[str]:
    """Ids for a request: one id or a list of them, each valid text (what a service made, unchecked)."""
    items = [values] if isinstance(values, str) else values
    try:
        items = list(items)  # type: ignore[call-overload]
    except TypeError:
        raise ConfigError(f"{name} must be a job id or a list of them (str), not {_kind(values)}") from None
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{name} must be job ids (str), not {_kind(item)}")
        unicode(item, "a job id")
    return list(dict.fromkeys(items))


def job_ids(values: object, name: str = "job id") -> list[str]:
    """Job ids as the API makes them (32 hex digits), checked before anything is asked about them."""
    items = [values] if isinstance(values, str) else values
    if not isinstance(items, Sequence):
        raise ConfigError(f"{name}s must be a list of job ids (str), not {_kind(values)}")
    ids = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"a {name} must be text (a str), not {_kind(item)}")
        job_id = item.strip()
        if job_id and not _JOB_ID.fullmatch(job_id):
            raise ConfigError(f"malformed {name} {job_id[:40]!r}: expected 32 hex digits")
        if job_id:
            ids.append(job_id)
    return list(dict.fromkeys(ids))

