"""``actions options`` (a dropdown listed live, or its static fallback) and
``connection test``, run in-process against the built-in sandbox."""

from __future__ import annotations

import json

import httpx
import pytest

from stability_connector import cli, node, sandbox
from stability_connector.connection import Connection
from stability_connector.sandbox import Fault, Sandbox, SandboxConfig

SECRET = "sk-cli-TEST-5ecret-0a1b2c3d4e5f"


@pytest.fixture
def box(monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    instance = Sandbox(SandboxConfig(job_seconds=0.0))
    monkeypatch.setattr(sandbox, "default_sandbox", lambda: instance)
    return instance


def keyed_box(monkeypatch: pytest.MonkeyPatch, config: SandboxConfig) -> Sandbox:
    """A sandbox that answers every connection, including one with a real-looking key
    (which would otherwise go to the API)."""
    instance = Sandbox(config)

    def client(conn: Connection, _timeouts: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=conn.base_url, transport=instance.transport())

    monkeypatch.setattr(node, "build_client", client)
    monkeypatch.setenv("STABILITY_API_KEY", SECRET)
    return instance


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- actions options -----------------------------------------------------------------


def test_engine_options_are_listed_live_from_the_sandbox(
    box: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "actions", "options", "v1_text_to_image", "engine_id")
    assert code == 0, err
    assert "sandbox" in err
    assert "listed live by v1_engines_list" in out
    assert "Stable Diffusion XL v1.0  → stable-diffusion-xl-1024-v1-0" in out
    assert "esrgan" not in out
    assert [(e.method, e.path) for e in box.journal] == [("GET", "/v1/engines/list")]


def test_a_failed_listing_prints_the_static_fallback(
    box: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    box.script([Fault(status=401)])
    code, out, err = run_cli(capsys, "actions", "options", "v1_masking", "engine_id")
    assert code == 0, err
    assert "static fallback options (v1_engines_list failed: Stability API 401" in out
    assert "Stable Diffusion 1.6" in out and "→ stable-diffusion-v1-6" in out
    code, out, _ = run_cli(capsys, "actions", "options", "v1_masking", "engine_id", "--json")
    found = json.loads(out)
    assert found["live"] is True and found["fallback_reason"] is None, "one fault only"

    box.script([Fault(status=401)])
    code, out, _ = run_cli(capsys, "actions", "options", "v1_upscale", "engine_id", "--json")
    found = json.loads(out)
    assert code == 0 and found["live"] is False and "401" in found["fallback_reason"]
    assert found["options"] == [{"value": "esrgan-v1-x2plus", "label": "Real-ESRGAN x2"}]


def test_fixed_options_and_unknown_fields(box: Sandbox, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "actions", "options", "generate_image", "output_format")
    assert code == 0 and "fixed options" in out and "PNG  → png" in out
    assert box.journal == []
    code, _, err = run_cli(capsys, "actions", "options", "v1_text_to_image", "engine")
    assert code == 1 and "has no field 'engine'" in err and "Traceback" not in err


# --- connection test -----------------------------------------------------------------


def test_connection_test_against_the_sandbox(
    box: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "connection", "test")
    assert code == 0, err
    assert "connection sandbox at http://sandbox.stability.invalid" in out
    assert "GET /v1/user/account" in out
    assert "OK: the key is accepted (id user-" in out and "email sandbox-" in out
    code, out, _ = run_cli(capsys, "connection", "test", "--json")
    found = json.loads(out)
    assert code == 0 and found["ok"] is True and found["account"]["email"]


def test_connection_test_with_a_refused_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    instance = keyed_box(monkeypatch, SandboxConfig(keys=["sk-someone-else"]))
    code, out, err = run_cli(capsys, "connection", "test")
    assert code == 1
    assert "connection default at https://api.stability.ai" in out
    assert "FAILED: Stability API 401" in err
    assert "check the environment variable STABILITY_API_KEY" in err
    code, json_out, _ = run_cli(capsys, "connection", "test", "--json")
    found = json.loads(json_out)
    assert code == 1 and found["ok"] is False and found["status"] == 401
    assert len(instance.journal) == 2, "401 is final: one request per test"
    for text in (out, err, json_out):
        assert SECRET not in text


def test_connection_test_with_an_accepted_key_never_shows_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    keyed_box(monkeypatch, SandboxConfig(keys=[SECRET]))
    code, out, err = run_cli(capsys, "connection", "test")
    assert code == 0, err
    assert "OK: the key is accepted" in out
    assert SECRET not in out + err


def test_connection_test_of_a_named_connection_without_its_key(
    box: Sandbox, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STABILITY_STAGING_API_KEY", raising=False)
    code, out, err = run_cli(capsys, "connection", "test", "--connection", "staging")
    assert code == 1
    assert "connection staging" in out
    assert "STABILITY_STAGING_API_KEY" in err
    assert box.journal == []
