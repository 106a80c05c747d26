"""The journal of requests, in-process and over the admin routes, and the key's secrecy."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable

import httpx
import pytest
from sandbox_helpers import KEY, image_bytes

from stability_connector.sandbox import (
    DEFAULT_BLOCK_WORDS,
    DEFAULT_FILTER_WORDS,
    Fault,
    Sandbox,
    add_sandbox_arguments,
    add_sandbox_command,
    serve_in_thread,
)
from stability_connector.sandbox.server import config_from_arguments
from stability_connector.sandbox.state import fingerprint


@pytest.mark.anyio
async def test_each_request_is_journaled_without_the_key(sandbox: Sandbox) -> None:
    async with sandbox.client(api_key=KEY, headers={"x-echo": f"token {KEY}"}) as client:
        await client.post(
            "/v2beta/stable-image/edit/erase?note=1",
            files={
                "image": ("photo.png", image_bytes(320, 240), "image/png"),
                "mask": ("mask.png", image_bytes(320, 240), "image/png"),
            },
            data={"seed": "4", "output_format": "jpeg", "comment": KEY},
            headers={"accept": "application/json", "stability-client-id": "tests"},
        )
        await client.get("/v1/user/balance")
    entry, balance = sandbox.journal
    assert entry.method == "POST" and entry.path == "/v2beta/stable-image/edit/erase"
    assert entry.operation == "POST /v2beta/stable-image/edit/erase"
    assert entry.query == "note=1"
    assert entry.status == 200 and entry.outcome == "ok"
    assert entry.fields == {"seed": "4", "output_format": "jpeg", "comment": "***"}
    assert entry.files == {"image": len(image_bytes(320, 240)), "mask": len(image_bytes(320, 240))}
    assert entry.headers["authorization"] == "Bearer ***"
    assert entry.headers["x-echo"] == "token ***"
    assert entry.headers["stability-client-id"] == "tests"
    assert entry.key_fingerprint == fingerprint(KEY) and len(entry.key_fingerprint) == 8
    assert entry.credits_charged == 5.0
    assert len(entry.request_id) == 32 and entry.body_size > 0
    assert balance.seq == entry.seq + 1 and balance.at >= entry.at
    assert KEY not in json.dumps([e.to_dict() for e in sandbox.journal])


@pytest.mark.anyio
async def test_errors_are_journaled_with_their_name(sandbox: Sandbox) -> None:
    async with sandbox.client(api_key=KEY) as client:
        await client.post("/v2beta/stable-image/generate/core", data={"prompt": "x"})
    (entry,) = sandbox.journal
    assert (entry.status, entry.outcome, entry.error_name) == (400, "error", "bad_request")
    assert entry.fields == {"prompt": "x"}


@pytest.mark.anyio
async def test_jobs_are_journaled_with_their_id(sandbox: Sandbox) -> None:
    async with sandbox.client(api_key=KEY) as client:
        start = await client.post(
            "/v2beta/audio/stable-audio/text-to-audio",
            files={"none": ""},
            data={"prompt": "birdsong"},
        )
        await client.get(f"/v2beta/audio/results/{start.json()['id']}")
    created, polled = sandbox.journal
    assert created.job_id == polled.job_id == start.json()["id"]
    assert polled.status == 202


@pytest.mark.anyio
async def test_reset_starts_over(sandbox: Sandbox) -> None:
    async with sandbox.client(api_key=KEY) as client:
        await client.post(
            "/v2beta/stable-image/generate/core", files={"none": ""}, data={"prompt": "x"}
        )
        sandbox.script([Fault(status=500)])
        sandbox.reset()
        assert (await client.get("/v1/user/balance")).json() == {"credits": 1000.0}
    assert len(sandbox.journal) == 1


def test_the_key_stays_out_of_server_logs(caplog: pytest.LogCaptureFixture) -> None:
    sandbox = Sandbox()
    caplog.set_level(logging.DEBUG)
    with (
        serve_in_thread(sandbox, log_level="debug") as server,
        httpx.Client(
            base_url=server.base_url, headers={"authorization": f"Bearer {KEY}"}
        ) as client,
    ):
        client.post("/v2beta/stable-image/generate/core", data={"prompt": "x"})
        client.get("/v2beta/results/" + "0" * 64)
    assert KEY not in caplog.text


@pytest.mark.slow
def test_another_process_reads_the_journal_over_http() -> None:
    sandbox = Sandbox()
    with serve_in_thread(sandbox) as server, httpx.Client(base_url=server.base_url) as client:
        for key in ("sk-runner-a", "sk-runner-b"):
            client.post(
                "/v2beta/stable-image/generate/core",
                files={"none": ""},
                data={"prompt": "a mill"},
                headers={"authorization": f"Bearer {key}"},
            )
        journal = client.get("/_sandbox/journal").json()
        later = client.get("/_sandbox/journal", params={"since": journal["next"]}).json()
        state = client.get("/_sandbox/state").json()
        credits = client.post("/_sandbox/credits", json={"key": "sk-runner-a", "credits": 5})
        reset = client.post("/_sandbox/reset")
        after = client.get("/_sandbox/journal").json()
        unknown = client.get("/_sandbox/nothing")
    entries = journal["entries"]
    assert [e["key_fingerprint"] for e in entries] == [
        fingerprint("sk-runner-a"),
        fingerprint("sk-runner-b"),
    ]
    assert all(e["status"] == 200 for e in entries) and journal["next"] == 2
    assert later == {"entries": [], "next": 2}
    assert {a["credits"] for a in state["accounts"]} == {997.0}
    assert state["settings"]["rate_limit"] == 150
    assert credits.status_code == 200 and reset.status_code == 200
    assert after == {"entries": [], "next": 0}
    assert unknown.status_code == 404
    assert "sk-runner" not in json.dumps([journal, state])


def test_command_line_arguments() -> None:
    parser = argparse.ArgumentParser()
    add_sandbox_arguments(parser)
    args = parser.parse_args(
        [
            "--port",
            "0",
            "--latency",
            "0.5",
            "--faults",
            "503:0.1,seed=3",
            "--keys",
            "sk-a, sk-b",
            "--credits",
            "50",
            "--retry-after",
            "--rate-window",
            "5",
            "--timeout-seconds",
            "2",
            "--block-words",
            "nope, never",
            "--filter-words",
            "",
        ]
    )
    config = config_from_arguments(args)
    assert (args.host, config.latency, config.credits) == ("127.0.0.1", 0.5, 50.0)
    assert config.keys == ["sk-a", "sk-b"] and config.faults == "503:0.1,seed=3"
    assert config.retry_after is True
    assert (config.rate_window, config.timeout_seconds) == (5.0, 2.0)
    assert config.block_words == ("nope", "never") and config.filter_words == ()
    defaults = config_from_arguments(parser.parse_args([]))
    assert defaults.block_words == DEFAULT_BLOCK_WORDS
    assert defaults.filter_words == DEFAULT_FILTER_WORDS
    commands = argparse.ArgumentParser().add_subparsers()
    add_sandbox_command(commands)
    assert "sandbox" in commands.choices


def test_a_bad_fault_spec_or_public_host_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from stability_connector.sandbox import run_sandbox_command

    parser = argparse.ArgumentParser()
    add_sandbox_arguments(parser)
    assert run_sandbox_command(parser.parse_args(["--faults", "nope"])) == 2
    assert "unknown fault" in capsys.readouterr().err
    assert run_sandbox_command(parser.parse_args(["--host", "0.0.0.0"])) == 2
    assert "loopback only" in capsys.readouterr().err


def test_serve_in_thread_on_a_free_port(make_sandbox: Callable[..., Sandbox]) -> None:
    with serve_in_thread(Sandbox()) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        response = httpx.get(
            f"{server.base_url}/v1/engines/list", headers={"authorization": "Bearer sk-x"}
        )
        assert response.status_code == 200
    assert not server.thread.is_alive()


@pytest.mark.anyio
async def test_credentials_of_any_scheme_are_redacted(sandbox: Sandbox) -> None:
    async with sandbox.client(api_key=None) as client:
        await client.get("/v1/user/balance", headers={"authorization": f"Basic {KEY}"})
        await client.get("/v1/user/balance", headers={"authorization": KEY})
    assert [e.headers["authorization"] for e in sandbox.journal] == ["Basic ***", "***"]
    assert KEY not in json.dumps([e.to_dict() for e in sandbox.journal])


@pytest.mark.anyio
async def test_the_journal_keeps_the_latest_entries(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(journal_limit=3)
    async with sandbox.client(api_key=KEY) as client:
        for _ in range(5):
            await client.get("/v1/user/balance")
    assert [e.seq for e in sandbox.journal] == [2, 3, 4]
    assert [e.seq for e in sandbox.state.journal_since(3)] == [3, 4]
    assert sandbox.state.journal_next == 5
