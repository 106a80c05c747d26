"""Shared test settings: async tests run on asyncio, and no test ever reaches the
real API, whatever the environment holds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("STABILITY_API_KEY", "STABILITY_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    yield
