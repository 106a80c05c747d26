"""Shared test settings: async tests run on asyncio, and no test ever reaches the
real API, whatever the environment holds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True, scope="session")
def _sandbox_jobs_apart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The built-in sandbox keeps its jobs in a folder of the test run's own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STABILITY_SANDBOX_JOBS_DIR", str(tmp_path_factory.mktemp("sandbox-jobs")))
        yield


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("STABILITY_API_KEY", "STABILITY_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    yield
