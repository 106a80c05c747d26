"""Fixtures for the action tests: the repository's catalog, a sandbox on a fake clock
whose jobs finish sooner than the real API's, and a runtime sending to that sandbox
in-process. Tests run in the repository root, where the examples' sample files
(examples/media/...) are found by their relative paths."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from stability_connector.catalog import Catalog, load_catalog
from stability_connector.clock import FakeClock
from stability_connector.connection import Connection, Secret
from stability_connector.node import Runtime
from stability_connector.sandbox import SANDBOX_BASE_URL, Sandbox, SandboxConfig

REPO = Path(__file__).resolve().parents[2]
TEST_KEY = "sk-actions-TEST-0a1b2c3d4e5f"
# Shorter than the sandbox's default 20 s, longer than the 10 s before the first poll:
# every job answers one poll with 202 (still running) and the next with its result.
JOB_SECONDS = 15.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(REPO)
    yield


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(REPO)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1000.0)


@pytest.fixture
def sandbox(clock: FakeClock) -> Sandbox:
    return Sandbox(SandboxConfig(clock=clock.now, job_seconds=JOB_SECONDS, random_seed=7))


@pytest.fixture
def connection() -> Connection:
    return Connection(name="test", base_url=SANDBOX_BASE_URL, api_key=Secret(TEST_KEY))


@pytest.fixture
async def runtime(
    catalog: Catalog, clock: FakeClock, sandbox: Sandbox, tmp_path: Path
) -> AsyncIterator[Runtime]:
    def client(conn: Connection) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=conn.base_url, transport=sandbox.transport())

    async with Runtime(
        catalog, clock=clock, out_dir=tmp_path / "out", client_factory=client, rng=random.Random(5)
    ) as rt:
        yield rt
