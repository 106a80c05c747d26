"""Fixtures for the node tests: the catalog, a sandbox on a fake clock, and a runtime
whose every request goes to that sandbox in-process."""

from __future__ import annotations

import random
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml

from stability_connector.catalog import Catalog, load_catalog
from stability_connector.clock import FakeClock
from stability_connector.connection import Connection, Secret
from stability_connector.errors import DefinitionError
from stability_connector.node import Runtime
from stability_connector.sandbox import SANDBOX_BASE_URL, Sandbox, SandboxConfig

TEST_KEY = "sk-node-TEST-5ecret-9f8e7d6c5b4a"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The repository's catalog; while some listed actions are still being written, the
    ones that exist (so these tests do not depend on files other areas own)."""
    try:
        return load_catalog(REPO)
    except DefinitionError:
        root = tmp_path_factory.mktemp("catalog")
        shutil.copytree(REPO / "actions", root / "actions")
        shutil.copytree(REPO / "schemas", root / "schemas")
        connector = yaml.safe_load((REPO / "connector.yaml").read_text())
        connector["actions"] = [
            a for a in connector["actions"] if (REPO / "actions" / f"{a}.yaml").is_file()
        ]
        (root / "connector.yaml").write_text(yaml.safe_dump(connector, sort_keys=False))
        return load_catalog(root)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock) -> Sandbox:
    return Sandbox(SandboxConfig(clock=clock.now, random_seed=1))


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
        catalog, clock=clock, out_dir=tmp_path / "out", client_factory=client, rng=random.Random(3)
    ) as rt:
        yield rt


def png(width: int, height: int, color: str = "red") -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="PNG")
    return out.getvalue()
