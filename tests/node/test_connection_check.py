"""Runtime.test_connection: the connector's connection test sent like any run."""

from __future__ import annotations

import json
import random
from pathlib import Path

import httpx
import pytest

from stability_connector.catalog import Catalog
from stability_connector.clock import FakeClock
from stability_connector.connection import Connection
from stability_connector.node import Runtime
from stability_connector.sandbox import Fault, Sandbox, SandboxConfig

from .conftest import TEST_KEY

pytestmark = pytest.mark.anyio


async def test_an_accepted_key_gives_the_account(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    check = await runtime.test_connection(connection)
    assert check.ok and check.status == 200 and check.error is None
    assert (check.connection, check.base_url) == ("test", connection.base_url)
    assert check.request == "GET /v1/user/account"
    assert check.account["id"].startswith("user-") and "@" in check.account["email"]
    (sent,) = sandbox.journal
    assert (sent.method, sent.path) == ("GET", "/v1/user/account")
    # Sent like a run: the client headers and the key (redacted in the journal).
    assert sent.headers["stability-client-id"] == "stability-connector"
    assert TEST_KEY not in sent.headers["authorization"]
    assert TEST_KEY not in json.dumps(check.to_dict(), default=str)


async def test_a_refused_key_says_which_setting_to_change(
    catalog: Catalog, clock: FakeClock, connection: Connection, tmp_path: Path
) -> None:
    only_others = Sandbox(SandboxConfig(keys=["sk-someone-else"], clock=clock.now))

    def client(conn: Connection) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=conn.base_url, transport=only_others.transport())

    async with Runtime(
        catalog, clock=clock, out_dir=tmp_path, client_factory=client, rng=random.Random(1)
    ) as runtime:
        check = await runtime.test_connection(connection)
    assert not check.ok and check.status == 401
    assert check.hint is not None and "STABILITY_API_KEY" in check.hint
    assert len(only_others.journal) == 1, "401 is final: not retried"
    text = json.dumps(check.to_dict(), default=str) + repr(check)
    assert TEST_KEY not in text


async def test_a_server_fault_is_retried_like_a_run(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    sandbox.script([Fault(status=503), None])
    check = await runtime.test_connection(connection)
    assert check.ok
    assert [a.status for a in check.attempts] == [503, 200]


async def test_a_failing_api_is_reported_after_one_quick_retry(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    """A person waits on the test: the short policy, not the workflow's five attempts."""
    sandbox.script([Fault(status=503)] * 5)
    check = await runtime.test_connection(connection)
    assert not check.ok and check.status == 503
    assert [a.status for a in check.attempts] == [503, 503]
    assert len(sandbox.journal) == 2


async def test_a_named_connection_without_its_key_is_explained(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STABILITY_STAGING_API_KEY", raising=False)
    check = await runtime.test_connection("staging")
    assert not check.ok and check.connection == "staging" and check.attempts == []
    assert check.error is not None and "STABILITY_STAGING_API_KEY" in check.error
