"""Fault injection: the spec grammar, scripted and random faults, in-process and over a
real socket."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from sandbox_helpers import KEY, FakeSleep

from stability_connector.sandbox import (
    Fault,
    FaultSpecError,
    Sandbox,
    parse_fault,
    parse_fault_spec,
    serve_in_thread,
)

CORE = "/v2beta/stable-image/generate/core"
FORM = {"files": {"none": ""}, "data": {"prompt": "a red kite", "seed": "7"}}


def test_the_spec_grammar() -> None:
    faults, seed = parse_fault_spec("503:0.2,429+retry-after=2:0.1,reset:0.05,seed=7")
    assert seed == 7
    assert faults == [
        (Fault(status=503), 0.2),
        (Fault(status=429, retry_after=2.0), 0.1),
        (Fault(reset="before"), 0.05),
    ]
    assert parse_fault("reset-after") == Fault(reset="after")
    assert parse_fault("truncate+path=/v2beta/*") == Fault(truncate=True, path="/v2beta/*")
    assert parse_fault("latency=1.5") == Fault(latency=1.5)
    assert parse_fault("502+html+charged") == Fault(status=502, html=True, charged=True)
    assert parse_fault("ok") is None
    for text in (
        "429+retry-after=2",
        "reset-after+latency=0.5",
        "truncate",
        "latency=3",
        "502+charged+html+path=/v1/",
    ):
        fault = parse_fault(text)
        assert fault is not None and parse_fault(fault.describe()) == fault


@pytest.mark.parametrize(
    "spec",
    [
        "999",
        "boom",
        "503:1.5",
        "503:0.6,500:0.6",
        "429+retry-after=soon",
        "503+loud",
        "seed=x",
    ],
)
def test_a_bad_spec_is_refused_with_a_reason(spec: str) -> None:
    with pytest.raises(FaultSpecError):
        parse_fault_spec(spec)


def test_a_fault_is_one_outcome() -> None:
    with pytest.raises(FaultSpecError):
        Fault(status=503, reset="before")


@pytest.mark.anyio
async def test_scripted_faults_are_used_one_per_request(sandbox: Sandbox) -> None:
    sandbox.script([Fault(status=503), None, Fault(status=429, retry_after=2), Fault(status=500)])
    async with sandbox.client(api_key=KEY) as client:
        statuses = [(await client.post(CORE, **FORM)) for _ in range(5)]
    assert [r.status_code for r in statuses] == [503, 200, 429, 500, 200]
    assert statuses[2].headers["retry-after"] == "2"
    assert "retry-after" not in statuses[0].headers
    assert statuses[0].json()["name"] == "service_unavailable"
    assert statuses[2].json()["name"] == "rate_limit_exceeded"
    assert statuses[3].json()["name"] == "internal_error"
    # Failures cost nothing: two successful Core images at 3 credits.
    assert sandbox.balance(KEY) == sandbox.config.credits - 6
    assert [e.fault for e in sandbox.journal] == ["503", None, "429+retry-after=2", "500", None]


@pytest.mark.anyio
async def test_a_script_can_target_a_path(sandbox: Sandbox) -> None:
    sandbox.script([Fault(status=502)], path="/v1/user/*")
    async with sandbox.client(api_key=KEY) as client:
        generated = await client.post(CORE, **FORM)
        balance = await client.get("/v1/user/balance")
        again = await client.get("/v1/user/balance")
    assert (generated.status_code, balance.status_code, again.status_code) == (200, 502, 200)


@pytest.mark.anyio
async def test_a_reset_before_the_response_is_a_transport_error(sandbox: Sandbox) -> None:
    sandbox.script([Fault(reset="before")])
    async with sandbox.client(api_key=KEY) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(CORE, **FORM)
        assert (await client.post(CORE, **FORM)).status_code == 200
    cut, ok = sandbox.journal
    assert (cut.outcome, cut.status, cut.credits_charged) == ("reset-before", None, 0.0)
    assert ok.outcome == "ok"


@pytest.mark.anyio
async def test_a_reset_after_the_response_starts_leaves_the_charge(sandbox: Sandbox) -> None:
    sandbox.script([Fault(reset="after"), Fault(truncate=True)])
    async with sandbox.client(api_key=KEY) as client:
        with pytest.raises(httpx.ReadError):
            await client.post(CORE, **FORM)
        with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
            await client.post(CORE, **FORM)
    assert [e.outcome for e in sandbox.journal] == ["reset-after", "truncated"]
    # The work was done: both were charged although the client saw no result.
    assert sandbox.balance(KEY) == sandbox.config.credits - 6


@pytest.mark.anyio
async def test_a_charged_failure_costs_credits(sandbox: Sandbox) -> None:
    sandbox.script([Fault(status=504, charged=True), Fault(reset="before", charged=True)])
    async with sandbox.client(api_key=KEY) as client:
        response = await client.post(CORE, **FORM)
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(CORE, **FORM)
    assert response.status_code == 504
    assert [e.credits_charged for e in sandbox.journal] == [3.0, 3.0]
    assert sandbox.balance(KEY) == sandbox.config.credits - 6


@pytest.mark.anyio
async def test_an_html_gateway_page(sandbox: Sandbox) -> None:
    sandbox.script([Fault(status=502, html=True)])
    async with sandbox.client(api_key=KEY) as client:
        response = await client.post(CORE, **FORM)
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert "502 Bad Gateway" in response.text


@pytest.mark.anyio
async def test_latency_uses_the_injected_sleep(
    make_sandbox: Callable[..., Sandbox], fake_sleep: FakeSleep
) -> None:
    sandbox = make_sandbox(latency=0.25)
    sandbox.script([Fault(latency=2.0)])
    async with sandbox.client(api_key=KEY) as client:
        await client.get("/v1/user/balance")
        await client.get("/v1/user/balance")
    assert fake_sleep.calls == [2.25, 0.25]


@pytest.mark.anyio
async def test_random_faults_are_reproducible_from_their_seed(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    async def statuses() -> list[int]:
        sandbox = make_sandbox(faults="503:0.3,429:0.2,seed=11", rate_limit=10_000)
        async with sandbox.client(api_key=KEY) as client:
            return [(await client.get("/v1/user/balance")).status_code for _ in range(200)]

    first, second = await statuses(), await statuses()
    assert first == second
    assert 40 <= first.count(503) <= 80 and 20 <= first.count(429) <= 60
    assert first.count(200) == 200 - first.count(503) - first.count(429)


@pytest.mark.anyio
async def test_faults_can_be_set_and_cleared(sandbox: Sandbox) -> None:
    sandbox.set_faults("500")
    async with sandbox.client(api_key=KEY) as client:
        assert (await client.get("/v1/user/balance")).status_code == 500
        sandbox.set_faults(None)
        assert (await client.get("/v1/user/balance")).status_code == 200


@pytest.mark.slow
def test_resets_cut_a_real_connection() -> None:
    sandbox = Sandbox()
    with (
        serve_in_thread(sandbox) as server,
        httpx.Client(
            base_url=server.base_url, headers={"authorization": f"Bearer {KEY}"}, timeout=10
        ) as client,
    ):
        sandbox.script([Fault(reset="before"), Fault(reset="after"), Fault(truncate=True)])
        for _ in range(3):
            with pytest.raises(httpx.TransportError):
                client.post(CORE, **FORM)
        # The server is still up and answers the next request in full.
        response = client.post(CORE, **FORM)
        assert response.status_code == 200 and response.content[:4] == b"\x89PNG"
    assert [e.outcome for e in sandbox.journal] == [
        "reset-before",
        "reset-after",
        "truncated",
        "ok",
    ]


@pytest.mark.slow
def test_faults_over_http_through_the_admin_route() -> None:
    sandbox = Sandbox()
    with (
        serve_in_thread(sandbox) as server,
        httpx.Client(
            base_url=server.base_url, headers={"authorization": f"Bearer {KEY}"}, timeout=10
        ) as client,
    ):
        set_script = client.post(
            "/_sandbox/faults", json={"script": ["429+retry-after=1", None, "reset"]}
        )
        assert set_script.status_code == 200
        first = client.get("/v1/user/balance")
        second = client.get("/v1/user/balance")
        with pytest.raises(httpx.TransportError):
            client.get("/v1/user/balance")
        assert (first.status_code, first.headers.get("retry-after")) == (429, "1")
        assert second.status_code == 200
        bad = client.post("/_sandbox/faults", json={"spec": "teapot:0.5"})
        assert bad.status_code == 400 and "unknown fault" in bad.json()["error"]
        assert client.post("/_sandbox/faults", json={"spec": "503,seed=1"}).status_code == 200
        assert client.get("/v1/user/balance").status_code == 503
        assert client.post("/_sandbox/faults", json={}).status_code == 200
        assert client.get("/v1/user/balance").status_code == 200
