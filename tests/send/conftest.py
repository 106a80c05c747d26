"""Helpers for the send tests: a sender over any httpx transport, on a fake clock."""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx
import pytest

from stability_connector.clock import FakeClock
from stability_connector.connection import Connection, Secret
from stability_connector.ratelimit import RateLimiter
from stability_connector.retry import RetryPolicy
from stability_connector.sandbox import SANDBOX_BASE_URL, JournalEntry, Sandbox, SandboxConfig
from stability_connector.transport import PreparedRequest, Sender

TEST_KEY = "sk-TEST-5ecret-key-0123456789abcdef"
BASE_URL = "https://api.example.test"
CLIENT_HEADERS = {"stability-client-id": "stability-connector", "stability-client-version": "0.1.0"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_sender(
    transport: httpx.AsyncBaseTransport,
    *,
    policy: RetryPolicy | None = None,
    clock: FakeClock | None = None,
    limiter: RateLimiter | None = None,
    key: str = TEST_KEY,
    seed: int = 7,
) -> Sender:
    clock = clock or FakeClock()
    connection = Connection(name="test", base_url=BASE_URL, api_key=Secret(key))
    client = httpx.AsyncClient(base_url=BASE_URL, transport=transport)
    return Sender(
        client,
        connection,
        policy or RetryPolicy(),
        limiter or RateLimiter(150, 10.0, clock),
        clock,
        CLIENT_HEADERS,
        rng=random.Random(seed),
    )


Answer = int | tuple[int, dict[str, str]] | tuple[int, dict[str, str], bytes] | type[Exception]


def scripted(*answers: Answer) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport giving each request the next scripted answer (the last one repeats):
    a status, (status, headers[, body]), or an httpx exception class raised as the
    network would. It records the requests it received."""
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, type):
            raise answer("scripted fault", request=request)  # type: ignore[call-arg]
        if isinstance(answer, int):
            answer = (answer, {})
        status, headers, *rest = answer
        if rest:
            return httpx.Response(status, headers=headers, content=rest[0])
        if status >= 400:
            body = {"id": f"req-{len(seen)}", "name": "scripted", "errors": [f"status {status}"]}
            return httpx.Response(status, headers=headers, json=body)
        return httpx.Response(status, headers=headers, content=b"ok")

    return httpx.MockTransport(handler), seen


# --- the sandbox ---------------------------------------------------------------------

CORE = "/v2beta/stable-image/generate/core"
BALANCE = "/v1/user/balance"


@dataclass
class SandboxRig:
    """A sandbox on a fake clock, and senders to it that share one limiter."""

    clock: FakeClock
    sandbox: Sandbox
    limiter: RateLimiter

    def sender(
        self,
        policy: RetryPolicy | None = None,
        *,
        key: str = TEST_KEY,
        clock: FakeClock | None = None,
    ) -> Sender:
        connection = Connection(
            name="sandbox", base_url=SANDBOX_BASE_URL, api_key=Secret(key), sandbox=True
        )
        client = httpx.AsyncClient(base_url=SANDBOX_BASE_URL, transport=self.sandbox.transport())
        return Sender(
            client,
            connection,
            policy or RetryPolicy(),
            self.limiter,
            clock or self.clock,
            CLIENT_HEADERS,
            rng=random.Random(11),
        )

    def received(self, path: str | None = None) -> list[JournalEntry]:
        return [e for e in self.sandbox.journal if path is None or e.path == path]


@pytest.fixture
def rig() -> SandboxRig:
    clock = FakeClock()
    sandbox = Sandbox(SandboxConfig(clock=clock.now, sleep=clock.sleep, random_seed=1))
    return SandboxRig(clock, sandbox, RateLimiter(150, 10.0, clock))


def generate(prompt: str = "a lighthouse at dusk") -> PreparedRequest:
    """A paid request: Stable Image Core, binary answer."""
    return PreparedRequest(
        "POST",
        CORE,
        headers={"accept": "image/*"},
        data={"prompt": prompt, "output_format": "jpeg"},
        multipart=True,
        paid=True,
    )


def balance() -> PreparedRequest:
    return PreparedRequest("GET", BALANCE)
