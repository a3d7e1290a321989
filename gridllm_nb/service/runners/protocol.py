"""What crosses the pipe between the service and a runner: JSON lines.

Service -> runner (stdin): the registry entry once, then
``{"op": "generate", "request": {...}}`` and ``{"op": "cancel"}``.
Runner -> service (its own channel): ``ready`` (model loaded) or ``fatal``
(it could not load), then per generation any number of ``piece`` events and
one ``done`` (with ``finish`` and ``tokens``) or ``error``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from ..backends.base import GenerationRequest
from ..registry import ModelSpec

__all__ = ["request_from_json", "request_to_json", "spec_from_json", "spec_to_json"]


def spec_to_json(spec: ModelSpec) -> str:
    data = asdict(spec)
    data["settings"] = dict(spec.settings)
    return json.dumps(data, default=str)


def spec_from_json(line: str) -> ModelSpec:
    return ModelSpec(**json.loads(line))


def request_to_json(request: GenerationRequest) -> dict[str, Any]:
    data = asdict(request)
    data["stop"] = list(request.stop)
    return data


def request_from_json(data: dict[str, Any]) -> GenerationRequest:
    return GenerationRequest(**{**data, "stop": tuple(data.get("stop") or ())})
