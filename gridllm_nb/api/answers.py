"""What the service answered, as data or as one of our errors: the HTTP half of the client.

Every status the API can answer maps to one error of the ``gridllm_nb.errors``
family here, once, with the token scrubbed and with whether the request may
be repeated (``retry.Retryable``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from ..config import TOKEN_ENV
from ..errors import (
    APIError,
    AuthError,
    NotSupported,
    ProtocolError,
    RateLimited,
    ServiceUnreachable,
    TransportError,
)
from .retry import Retryable, retry_after
from .wire import loads_json

__all__ = ["failure", "parse_answer"]


def failure(method: str, url: str, exc: httpx.HTTPError, *, base_url: str, scrub: Callable[[str], str]) -> Retryable:
    """An httpx failure as one of ours (token scrubbed), with whether the request may be repeated."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        # Nothing reached the server: safe to repeat, even a POST.
        return Retryable(ServiceUnreachable(scrub(f"cannot reach {base_url}: {exc}")),
                          safe_for_post=True, connect=True)
    if isinstance(exc, httpx.TimeoutException):
        return Retryable(TransportError(scrub(f"{method} {url} timed out")), safe_for_post=False)
    return Retryable(TransportError(scrub(f"{method} {url} failed: {exc or type(exc).__name__}")),
                      safe_for_post=False)


def parse_answer(method: str, url: str, response: httpx.Response, feature: str | None, *, base_url: str,
                 features: dict[str, bool], has_token: bool, scrub: Callable[[str], str]) -> dict[str, Any]:
    """The JSON object the service answered, or the error its status says (token scrubbed).

    ``feature`` names a local extension being tried: a 404/405/501 then says
    it is not offered (``features[feature] = False``, ``NotSupported``), an
    answer says it is. What may be tried again raises ``Retryable``.
    """
    code = response.status_code
    if code in (401, 403):
        hint = f"check the token in {TOKEN_ENV}" if has_token else f"set {TOKEN_ENV}"
        raise AuthError(f"the service refused the request ({code}): {hint}")
    if code == 429:
        after = retry_after(response)
        raise Retryable(
            RateLimited(f"rate limited by {base_url} (429)", retry_after=after),
            safe_for_post=True,
            retry_after=after,
        )
    if feature and code in (404, 405, 501):
        try:
            body = response.json()
        except ValueError:
            body = None
        # A JSON 404 from our own service is "no such id", not "no such endpoint".
        if not (isinstance(body, dict) and "success" in body and code == 404 and feature == "cancel"):
            features[feature] = False
            raise NotSupported(f"{base_url} does not offer '{feature}'")
    try:
        data = loads_json(response.content)
    except ValueError:
        error = ProtocolError(f"{method} {url} answered {code} with non-JSON text")
        if code >= 500:
            raise Retryable(APIError(f"server error {code} from {url}", status_code=code),
                             safe_for_post=code == 503) from None
        raise Retryable(error, safe_for_post=False) from None
    if not isinstance(data, dict):
        raise Retryable(
            ProtocolError(f"{method} {url} answered JSON that is not an object"), safe_for_post=False
        )
    if code >= 500:
        message = data.get("error") or f"server error {code}"
        raise Retryable(
            APIError(f"{scrub(message)} ({code})", status_code=code),
            safe_for_post=code == 503,
            retry_after=retry_after(response),
        )
    if data.get("success") is False or code >= 400:
        message = data.get("error") or data.get("message") or f"request failed ({code})"
        error = APIError(scrub(str(message)), status_code=code)
        if code == 200:
            # success:false with 200 on a read: treat as transient.
            raise Retryable(error, safe_for_post=False)
        raise error
    if feature:
        features[feature] = True
    return data
