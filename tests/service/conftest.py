"""Service-test fixtures: the real app, store and job layers with a fake engine behind them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from gridllm_nb.service.http.app import create_app
from gridllm_nb.service.registry import Registry
from tests.service.service_support import FakeBackend, fake_registry


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """Factory: ``make_client(delay=..., db=..., token=..., **create_app_kwargs)`` -> entered TestClient."""
    opened: list[TestClient] = []

    def factory(*, delay: float = 0.0, slow_delay: float = 0.05, db: Path | None = None,
                registry: Registry | None = None, **kwargs) -> TestClient:
        backends = {"fake:fast": FakeBackend(delay), "fake:slow": FakeBackend(slow_delay)}
        kwargs.setdefault("backend_factory", lambda spec: backends.get(spec.tag) or FakeBackend(delay))
        app = create_app(db=db or tmp_path / "jobs.sqlite3", registry=registry or fake_registry(), **kwargs)
        app.state.fake_backends = backends
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        opened.append(client)
        return client

    yield factory
    for client in opened:
        client.__exit__(None, None, None)


