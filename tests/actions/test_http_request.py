"""The generic HTTP request reaches only the connection's base URL.

Every trick of the OWASP SSRF cheat sheet that can ride in a path (absolute URLs and
other schemes, another host, user information, dot segments plain or encoded once or
twice, backslashes, encoded slashes, control characters, look-alike characters), and
the header and redirect tricks, is refused with an error that says what to give
instead, and nothing reaches the API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from stability_connector.catalog import Catalog
from stability_connector.clock import FakeClock
from stability_connector.connection import Connection
from stability_connector.errors import BlockedRequestError
from stability_connector.node import Runtime
from stability_connector.sandbox import SANDBOX_BASE_URL, Sandbox

PATH_TRICKS = {
    "absolute URL": "http://169.254.169.254/latest/meta-data/",
    "absolute URL to the API host": "https://api.stability.ai/v1/user/balance",
    "file scheme": "file:///etc/passwd",
    "gopher scheme": "gopher://127.0.0.1:6379/_INFO",
    "scheme-relative host": "//evil.example/v1/user/balance",
    "no leading slash": "evil.example/v1/user/balance",
    "user information": "/@evil.example/v1/user/balance",
    "user information mid-path": "/v1@evil.example/user/balance",
    "dot segments": "/v1/../../internal/admin",
    "single dot segment": "/v1/./user/balance",
    "encoded dot segments": "/v1/%2e%2e/%2e%2e/internal",
    "double-encoded dot segments": "/v1/%252e%252e/%252e%252e/internal",
    "encoded slash": "/%2F%2Fevil.example/v1",
    "encoded backslash": "/v1/%5c..%5cinternal",
    "backslash": "/\\evil.example/v1",
    "carriage return and line feed": "/v1/user/balance\r\nHost: evil.example",
    "encoded CRLF": "/v1/user/balance%0d%0aHost:%20evil.example",
    "NUL byte": "/v1/user/balance%00.png",
    "fullwidth slash look-alike": "/v1\uff0f..\uff0finternal",
    "fullwidth dot look-alike": "/v1/\uff0e\uff0e/internal",
    "query smuggled in the path": "/v1/user/balance?next=http://evil.example",
    "fragment in the path": "/v1/user/balance#@evil.example",
    "empty segment": "/v1//evil.example",
}


async def assert_refused(
    runtime: Runtime, sandbox: Sandbox, connection: Connection, inputs: dict[str, Any]
) -> BlockedRequestError:
    with pytest.raises(BlockedRequestError) as refused:
        await runtime.run("http_request", inputs, connection=connection)
    assert sandbox.journal == [], "nothing may be sent"
    assert connection.api_key.reveal() not in str(refused.value)
    return refused.value


@pytest.mark.anyio
@pytest.mark.parametrize("path", list(PATH_TRICKS.values()), ids=list(PATH_TRICKS))
async def test_path_tricks_are_refused_before_sending(
    path: str, runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    error = await assert_refused(runtime, sandbox, connection, {"path": path})
    assert "base URL" in str(error) or "path" in str(error)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example"},
        {"Authorization": "Bearer someone-elses-key"},
        {"X-Forwarded-Host": "evil.example"},
        {"X-Note": "ok\r\nHost: evil.example"},
    ],
    ids=["host", "authorization", "forwarded host", "header injection"],
)
async def test_header_tricks_are_refused(
    headers: dict[str, str], runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    await assert_refused(
        runtime, sandbox, connection, {"path": "/v1/user/balance", "headers": headers}
    )


@pytest.mark.anyio
async def test_query_injection_is_refused(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    inputs = {"path": "/v1/user/balance", "query": {"a": "1\r\nHost: evil.example"}}
    await assert_refused(runtime, sandbox, connection, inputs)


@pytest.mark.anyio
async def test_a_redirect_elsewhere_is_not_followed(
    catalog: Catalog, clock: FakeClock, connection: Connection, tmp_path: Path
) -> None:
    """The sandbox never redirects, so a stand-in server answers with one."""
    seen: list[str] = []

    def redirect(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"location": "http://169.254.169.254/"})

    def client(conn: Connection) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=conn.base_url, transport=httpx.MockTransport(redirect))

    async with Runtime(catalog, clock=clock, out_dir=tmp_path, client_factory=client) as runtime:
        with pytest.raises(BlockedRequestError, match="redirect"):
            await runtime.run("http_request", {"path": "/v1/user/balance"}, connection=connection)
    assert seen == [f"{SANDBOX_BASE_URL}/v1/user/balance"]


@pytest.mark.anyio
async def test_a_plain_path_goes_to_the_base_url_with_the_key(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    result = await runtime.run(
        "http_request",
        {"path": "/v1/user/balance", "query": {"detail": 1}, "headers": {"X-Note": "hello"}},
        connection=connection,
    )
    assert result.outputs["status"] == 200
    assert result.outputs["json"] == {"credits": sandbox.balance(connection.api_key.reveal())}
    (entry,) = sandbox.journal
    assert (entry.method, entry.path, entry.query) == ("GET", "/v1/user/balance", "detail=1")
    assert entry.headers.get("x-note") == "hello"
    assert entry.key_fingerprint is not None


@pytest.mark.anyio
async def test_json_body_is_sent_as_json(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    """v1 text to image through the generic request, with a JSON body."""
    body = {"text_prompts": [{"text": "a lighthouse", "weight": 1}], "samples": 1}
    result = await runtime.run(
        "http_request",
        {
            "method": "POST",
            "path": "/v1/generation/stable-diffusion-v1-6/text-to-image",
            "encoding": "json",
            "accept": "application/json",
            "body": body,
        },
        connection=connection,
    )
    assert result.outputs["status"] == 200
    assert len(result.outputs["json"]["artifacts"]) == 1
    (entry,) = sandbox.journal
    assert entry.headers["content-type"].startswith("application/json")
