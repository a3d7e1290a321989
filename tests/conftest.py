"""Shared fixtures: a real local service on a free port, and a clean environment.

Tests never see the developer's real endpoint or token: the variables are
dropped at import, before any test module reads them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from gridllm_nb.service.launcher import LocalService

for _name in ("GRIDLLM_API_TOKEN", "GRIDLLM_API_URL", "GRIDLLM_SERVICE_TOKEN", "GRIDLLM_DB", "GRIDLLM_MODELS"):
    os.environ.pop(_name, None)


@pytest.fixture(scope="session")
def local_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    """The real service (``python -m gridllm_nb.service``) with real models, on 127.0.0.1."""
    from gridllm_nb.service.launcher import start_service

    db: Path = tmp_path_factory.mktemp("service") / "jobs.sqlite3"
    service = start_service(db=db, timeout=180.0)
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def service_url(local_service) -> str:
    """Base URL of the session's local service, ``http://127.0.0.1:<port>/remotejobs/v2``."""
    return local_service.url
