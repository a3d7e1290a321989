"""Schemathesis fuzzing of /openapi.json: whatever it sends, never a 5xx.

The app runs in-process with a fake engine (tiny max_tokens), so a generated
request that happens to be valid never starts a long real inference.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from gridllm_nb.service.http.app import create_app
from tests.service.service_support import FakeBackend, fake_registry


def _app():
    import tempfile
    from pathlib import Path

    db = Path(tempfile.mkdtemp(prefix="gridllm_fuzz_")) / "jobs.sqlite3"
    return create_app(db=db, registry=fake_registry(max_tokens=2), backend_factory=lambda spec: FakeBackend())


schema = schemathesis.openapi.from_asgi("/openapi.json", _app())


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case) -> None:
    response = case.call_and_validate(checks=[not_a_server_error])
    assert response.status_code < 500
    if response.status_code >= 400:
        body = response.json()
        assert body["success"] is False and "\n" not in body["error"]
