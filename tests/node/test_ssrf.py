"""The generic HTTP request stays on the connection's base URL.

One test per trick of the OWASP SSRF Prevention Cheat Sheet that applies to a path (and
the encodings around them). Each must be refused with a ``BlockedRequestError`` and
nothing sent: the sandbox's journal stays empty.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from stability_connector.catalog import Catalog
from stability_connector.clock import FakeClock
from stability_connector.connection import Connection
from stability_connector.errors import BlockedRequestError
from stability_connector.node import Runtime
from stability_connector.request import confine_path
from stability_connector.sandbox import Sandbox

pytestmark = pytest.mark.anyio


async def refused(runtime: Runtime, sandbox: Sandbox, connection: Connection, **inputs: Any) -> str:
    with pytest.raises(BlockedRequestError) as caught:
        await runtime.run("http_request", {"method": "GET", **inputs}, connection=connection)
    assert sandbox.journal == []
    return str(caught.value)


async def refused_path(
    runtime: Runtime, sandbox: Sandbox, connection: Connection, path: str
) -> str:
    text = await refused(runtime, sandbox, connection, path=path)
    assert "nothing was sent" in text
    return text


TRICKS = {
    # Full URLs instead of a path ("do not accept complete URLs from the user").
    "absolute URL": ("https://evil.example/v1/user/balance", "absolute URLs"),
    "plain http URL": ("http://api.stability.ai/v1/user/balance", "absolute URLs"),
    "file scheme": ("file:///etc/passwd", "absolute URLs"),
    "gopher scheme": ("gopher://127.0.0.1:6379/_INFO", "absolute URLs"),
    "dict scheme": ("dict://127.0.0.1:11211/stat", "absolute URLs"),
    "ftp scheme": ("ftp://evil.example/x", "absolute URLs"),
    "scheme in mixed case": ("HtTpS://evil.example/x", "absolute URLs"),
    # Another host without a scheme.
    "scheme-relative //host": ("//evil.example/v1/user/balance", "names another host"),
    "host without a slash": ("evil.example/v1/user/balance", "must start with '/'"),
    "host and port": ("localhost:8080/admin", "absolute URLs"),
    # IP literals and their disguises.
    "IPv4 literal": ("http://127.0.0.1/admin", "absolute URLs"),
    "cloud metadata address": ("http://169.254.169.254/latest/meta-data/", "absolute URLs"),
    "decimal IPv4": ("http://2130706433/", "absolute URLs"),
    "octal IPv4": ("http://0177.0.0.1/", "absolute URLs"),
    "hex IPv4": ("http://0x7f000001/", "absolute URLs"),
    "short IPv4": ("http://127.1/", "absolute URLs"),
    "IPv6 loopback": ("http://[::1]/", "absolute URLs"),
    "IPv4-mapped IPv6": ("http://[::ffff:127.0.0.1]/", "absolute URLs"),
    "scheme-relative IP": ("//2130706433/", "names another host"),
    "wildcard DNS to loopback": ("//127.0.0.1.nip.io/", "names another host"),
    # User information: the host after the @ is where a parser goes.
    "userinfo in a URL": ("https://api.stability.ai@evil.example/x", "absolute URLs"),
    "@ in the path": ("/@evil.example/x", "'@'"),
    "encoded @": ("/v1/%40evil.example", "'@'"),
    # Backslashes (parsers that treat \ as /).
    "backslash host": ("/\\evil.example/x", "backslashes"),
    "double backslash": ("\\\\evil.example\\x", "must start with '/'"),
    "encoded backslash": ("/v1/%5c%5cevil.example", "encoded slashes"),
    # Dot segments, raw and encoded at any depth.
    "dot-dot segments": ("/v2beta/../../admin", "'.' and '..' segments"),
    "single dot segment": ("/v2beta/./v1/user/balance", "'.' and '..' segments"),
    "trailing dot-dot": ("/v1/user/..", "'.' and '..' segments"),
    "encoded dot-dot": ("/v2beta/%2e%2e/%2e%2e/admin", "'.' and '..' segments"),
    "upper-case encoded dot-dot": ("/v2beta/%2E%2E/admin", "'.' and '..' segments"),
    "half-encoded dot-dot": ("/v2beta/.%2e/admin", "'.' and '..' segments"),
    "double-encoded dot-dot": ("/v2beta/%252e%252e/admin", "'.' and '..' segments"),
    "triple-encoded dot-dot": ("/v2beta/%25252e%25252e/admin", "'.' and '..' segments"),
    # Encoded slashes that change the segments a server sees.
    "encoded slash": ("/v2beta%2F..%2Fadmin", "encoded slashes"),
    "encoded double slash": ("/%2f%2fevil.example/x", "encoded slashes"),
    "double-encoded slash": ("/v2beta%252F..%252Fadmin", "encoded slashes"),
    "empty segment": ("/v1//user/balance", "empty path segments"),
    # Control characters: request splitting and truncation.
    "CRLF": ("/v1/user/balance\r\nHost: evil.example", "control characters"),
    "encoded CRLF": ("/v1/user/balance%0d%0aHost:%20evil.example", "control characters"),
    "NUL byte": ("/v1/user/balance\x00.png", "control characters"),
    "encoded NUL": ("/v1/user/balance%00.png", "control characters"),
    "tab": ("/v1/user/\tbalance", "control characters"),
    # Unicode look-alikes that normalise to / . @ on some servers.
    "fullwidth solidus": ("/v2beta\uff0f..\uff0fadmin", "non-ASCII"),
    "fullwidth full stop": ("/v2beta/\uff0e\uff0e/admin", "non-ASCII"),
    "encoded fullwidth dots": ("/v2beta/%EF%BC%8E%EF%BC%8E/admin", "non-ASCII"),
    "enclosed alphanumerics host": ("//ⓔⓥⓘⓛ.example/x", "non-ASCII"),
    "small commercial at": ("/\ufe6bevil.example", "non-ASCII"),
    # Query or fragment smuggled into the path.
    "fragment": ("/v1/user/balance#@evil.example", "'@'"),
    "query in the path": ("/v1/user/balance?next=http://evil.example", "'?' and '#'"),
}


@pytest.mark.parametrize(("path", "reason"), TRICKS.values(), ids=TRICKS.keys())
async def test_the_trick_is_refused_and_nothing_is_sent(
    runtime: Runtime, sandbox: Sandbox, connection: Connection, path: str, reason: str
) -> None:
    assert reason in await refused_path(runtime, sandbox, connection, path)


@pytest.mark.parametrize(
    "header", ["Host", "host", "Authorization", "Cookie", "Content-Length", "Transfer-Encoding",
               "X-Forwarded-Host", "Proxy-Authorization"]
)  # fmt: skip
async def test_routing_framing_and_credential_headers_cannot_be_set(
    runtime: Runtime, sandbox: Sandbox, connection: Connection, header: str
) -> None:
    text = await refused(
        runtime, sandbox, connection, path="/v1/user/balance", headers={header: "evil.example"}
    )
    assert "cannot be set" in text


async def test_header_values_cannot_split_the_request(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    text = await refused(
        runtime, sandbox, connection, path="/v1/user/balance",
        headers={"x-note": "a\r\nHost: evil.example"},
    )  # fmt: skip
    assert "control characters" in text


async def test_a_plain_path_goes_to_the_base_url(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    result = await runtime.run(
        "http_request",
        {"method": "GET", "path": "/v1/user/balance", "query": {"x": 1}},
        connection=connection,
    )
    assert result.outputs["status"] == 200
    assert "credits" in result.outputs["json"]
    (entry,) = sandbox.journal
    assert (entry.method, entry.path, entry.query) == ("GET", "/v1/user/balance", "x=1")


def redirecting(location: str, seen: list[httpx.Request]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(302, headers={"location": location})

    return httpx.MockTransport(answer)


@pytest.mark.parametrize(
    "location",
    ["http://169.254.169.254/latest/meta-data/", "https://evil.example/x", "/v1/user/account"],
)
async def test_a_redirect_is_never_followed(
    catalog: Catalog, clock: FakeClock, connection: Connection, location: str, tmp_path: Any
) -> None:
    # The sandbox never redirects, so a mock answers this one.
    seen: list[httpx.Request] = []

    def client(conn: Connection) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=conn.base_url, transport=redirecting(location, seen), follow_redirects=False
        )

    async with Runtime(catalog, clock=clock, out_dir=tmp_path, client_factory=client) as runtime:
        with pytest.raises(BlockedRequestError, match="redirect"):
            await runtime.run(
                "http_request", {"method": "GET", "path": "/v1/user/balance"}, connection=connection
            )
    assert [str(r.url.path) for r in seen] == ["/v1/user/balance"]


def test_the_final_url_is_compared_with_the_base_url() -> None:
    assert confine_path("/v2beta/x", "https://proxy.example/stability/") == "/v2beta/x"
    assert confine_path("/v1/user/balance", "https://api.stability.ai") == "/v1/user/balance"
