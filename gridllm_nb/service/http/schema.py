"""The request and answer models: they validate what comes in and write the OpenAPI description.

The answers themselves are encoded by hand (``encode``), for speed; these
models say what those bytes hold, so the description a client reads and the
bytes it gets must change together. A field or an endpoint that the public
GridRepublic API lacks says so in its description (``LOCAL``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from .guards import MAX_BULK_IDS

__all__ = ["ERRORS", "LOCAL", "BulkStatusRequest", "CancelAnswer", "ErrorAnswer", "HealthAnswer", "JobView",
           "ModelInfo", "ModelsAnswer", "StateView", "StatusAnswer", "SubmitAnswer", "SubmitRequest",
           "WatchRequest"]

LOCAL = "**Local extension** (this embedded service only; the public GridRepublic API lacks it). "


class SubmitRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    app: StrictStr = Field("gridrepublic:text-inference", description="`gridrepublic:text-inference` (or `charityengine:text-inference`)")
    commandLine: StrictStr = Field(
        ...,
        description=(
            "A string holding the inputs: JSON `{\"inputs\": [\"<prompt>\"]}` (or `input`), or the oldest page's "
            "Python literal `{'input': ['<prompt>'] }`. One job per input (at most 100), their `ids` in the same order. **Local extensions** inside it: "
            "`system` (system prompt; prepended for completion models) and `options` "
            "(`max_tokens` alias `num_predict`, `temperature`, `top_p`, `seed`, `stop`, `repeat_penalty`, and `template`: "
            "a completion frame holding `{prompt}` for base models, `\"\"` for the bare prompt)."
        ),
        examples=["{'input': ['When does 1+1=10?'] }"],
    )
    tag: StrictStr = Field(..., description="Model tag, e.g. `smollm2:135m`; see `GET /models`.")
    hours: float = Field(1.0, description="Runtime limit in hours, in (0, 8]; a job over it ends `error`.")


class SubmitAnswer(BaseModel):
    success: bool
    ids: list[str]


class BulkStatusRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ids: list[StrictStr] = Field(..., description=f"Job ids, at most {MAX_BULK_IDS}.")
    logFrom: dict[StrictStr, int] = Field(
        default_factory=dict,
        description="Per id, how many characters (Unicode code points) of its log the client already has: "
                    "that job's `log` then holds only the rest, and its state says `logFrom`.",
    )


class WatchRequest(BulkStatusRequest):
    every: float = Field(0.3, description="Seconds between two lines at least, in [0.1, 5]: the client's "
                         "own pace (its poll interval).")


class ErrorAnswer(BaseModel):
    success: bool = False
    error: str


class StateView(BaseModel):
    status: str = Field(..., description="queued, running, completed, error or cancelled")
    outputFiles: list[str]
    log: str = Field(..., description="The model's output so far; grows while running.")
    commandLine: str
    app: str
    message: str | None = Field(None, description=LOCAL + "Why the job ended `error` or `cancelled`.")
    finish: str | None = Field(None, description=LOCAL + "Why a `completed` job's generation ended: `stop` (the "
                               "model ended its answer, or a stop string) or `length` (it reached `max_tokens`). "
                               "Absent where the engine does not say (remote backends).")
    tokens: int | None = Field(None, description=LOCAL + "Tokens generated, with `finish`.")
    logFrom: int | None = Field(None, description=LOCAL + "Only in `POST /jobs/status` answers: `log` is "
                                "the log from this character on.")


class JobView(BaseModel):
    vmStatus: str
    states: dict[str, StateView]
    created: str
    copy_: int = Field(..., alias="copy")
    tag: str
    runtime: int = Field(..., description="Seconds run so far.")


class StatusAnswer(BaseModel):
    success: bool
    jobs: dict[str, JobView]


class CancelAnswer(BaseModel):
    success: bool
    cancelled: list[str]


class ModelInfo(BaseModel):
    tag: str
    backend: str
    local: bool
    mode: str
    max_tokens: int
    description: str


class ModelsAnswer(BaseModel):
    success: bool
    models: list[ModelInfo]


class HealthAnswer(BaseModel):
    success: bool
    status: str
    models: list[str]
    runners: dict[str, list[int]] = Field(default_factory=dict, description="Tag -> process ids of its model "
                                          "runners (llama.cpp models run in supervised child processes).")


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorAnswer, "description": text}
    for code, text in ((400, "Malformed request"), (401, "Missing or wrong bearer token"),
                       (404, "No such job"), (413, "Body or input too large"),
                       (429, "Too many jobs waiting (see Retry-After)"),
                       (503, "The job database takes no writes now, e.g. disk full (see Retry-After)"))
}
