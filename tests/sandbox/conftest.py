"""Fixtures for the sandbox tests: a fake clock and sleep, a sandbox that uses them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sandbox_helpers import FakeClock, FakeSleep

from stability_connector.sandbox import Sandbox, SandboxConfig


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake_sleep(clock: FakeClock) -> FakeSleep:
    return FakeSleep(clock)


@pytest.fixture
def make_sandbox(clock: FakeClock, fake_sleep: FakeSleep) -> Callable[..., Sandbox]:
    def make(**settings: object) -> Sandbox:
        settings.setdefault("clock", clock)
        settings.setdefault("sleep", fake_sleep)
        settings.setdefault("random_seed", 1234)
        return Sandbox(SandboxConfig(**settings))  # type: ignore[arg-type]

    return make


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox()
