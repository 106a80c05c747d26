"""Resolving a connection from the environment and connector.yaml; the key as a secret;
the httpx client each connection gets."""

from __future__ import annotations

import copy
import hashlib
import pickle
from pathlib import Path

import httpx
import pytest
import yaml

from stability_connector.connection import (
    Connection,
    ConnectionSetupError,
    Secret,
    resolve_connection,
)
from stability_connector.definitions import ConnectorSpec, TimeoutsSpec
from stability_connector.sandbox import SANDBOX_BASE_URL
from stability_connector.transport import build_client

from .conftest import TEST_KEY

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def connector() -> ConnectorSpec:
    data = yaml.safe_load((ROOT / "connector.yaml").read_text(encoding="utf-8"))
    return ConnectorSpec.model_validate(data)


def test_no_key_means_the_built_in_sandbox(connector: ConnectorSpec) -> None:
    connection = resolve_connection(connector, env={})
    assert connection.sandbox and connection.name == "sandbox"
    assert connection.base_url == SANDBOX_BASE_URL
    assert connection.api_key.reveal() == "sandbox"
    assert resolve_connection(connector, "sandbox", env={"STABILITY_API_KEY": "k"}).sandbox


def test_a_key_means_the_real_api(connector: ConnectorSpec) -> None:
    connection = resolve_connection(connector, env={"STABILITY_API_KEY": f" {TEST_KEY}\n"})
    assert not connection.sandbox and connection.name == "default"
    assert connection.base_url == "https://api.stability.ai"
    assert connection.api_key.reveal() == TEST_KEY
    assert connection.auth_header == "authorization"


def test_stability_base_url_overrides_the_address(connector: ConnectorSpec) -> None:
    env = {"STABILITY_API_KEY": TEST_KEY, "STABILITY_BASE_URL": "https://proxy.example/stability"}
    connection = resolve_connection(connector, env=env)
    assert connection.base_url == "https://proxy.example/stability" and not connection.sandbox
    # A sandbox served on loopback needs no key.
    loopback = resolve_connection(connector, env={"STABILITY_BASE_URL": "http://127.0.0.1:8765"})
    assert loopback.base_url == "http://127.0.0.1:8765" and not loopback.sandbox


def test_named_connections_have_their_own_key_and_address(connector: ConnectorSpec) -> None:
    env = {"STABILITY_STAGING_API_KEY": "staging-key", "STABILITY_API_KEY": "main-key"}
    staging = resolve_connection(connector, "staging", env=env)
    assert staging.name == "staging" and staging.api_key.reveal() == "staging-key"
    assert staging.base_url == "https://api.stability.ai"
    production = resolve_connection(connector, "production", env=env)
    assert production.api_key.reveal() == "main-key"
    # The gateway staging goes through comes from the environment (an installed
    # catalog is not edited); a bad address is refused with the variable's name.
    gateway = {**env, "STABILITY_STAGING_BASE_URL": "https://gateway.example/stability"}
    assert resolve_connection(connector, "staging", env=gateway).base_url == (
        "https://gateway.example/stability"
    )
    with pytest.raises(ConnectionSetupError, match="STABILITY_STAGING_BASE_URL"):
        resolve_connection(connector, "staging", env={**env, "STABILITY_STAGING_BASE_URL": "ftp:x"})


def test_a_named_connection_without_its_key_is_refused(connector: ConnectorSpec) -> None:
    with pytest.raises(ConnectionSetupError, match="STABILITY_STAGING_API_KEY"):
        resolve_connection(connector, "staging", env={"STABILITY_API_KEY": "main-key"})


def test_an_unknown_connection_names_the_known_ones(connector: ConnectorSpec) -> None:
    with pytest.raises(ConnectionSetupError) as caught:
        resolve_connection(connector, "prod", env={})
    assert "production" in str(caught.value) and "staging" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://api.example", "https://"),
        ("https://", "no host"),
        ("api.stability.ai", "https://"),
        ("https://user:hunter2@api.example", "user name or password"),
        ("https://api.example/?key=1", "query"),
        ("http://[::1", "not a valid URL"),
    ],
)
def test_bad_base_urls_are_refused_without_echoing_credentials(
    connector: ConnectorSpec, url: str, problem: str
) -> None:
    env = {"STABILITY_API_KEY": TEST_KEY, "STABILITY_BASE_URL": url}
    with pytest.raises(ConnectionSetupError) as caught:
        resolve_connection(connector, env=env)
    message = str(caught.value)
    assert problem in message and "STABILITY_BASE_URL" in message
    assert "hunter2" not in message and TEST_KEY not in message


def test_a_secret_never_shows_itself() -> None:
    secret = Secret(TEST_KEY)
    connection = Connection("x", "https://api.example", secret)
    shown = [
        repr(secret),
        str(secret),
        f"{secret}",
        f"{secret!r}",
        repr(connection),
        str(connection),
    ]
    assert all(TEST_KEY not in text for text in shown)
    assert repr(secret) == "Secret('****')"
    assert secret.fingerprint() == hashlib.sha256(TEST_KEY.encode()).hexdigest()
    assert secret == Secret(TEST_KEY) and secret != Secret("other")
    assert copy.deepcopy(connection).api_key is secret
    with pytest.raises(TypeError):
        pickle.dumps(secret)


async def _balance(client: httpx.AsyncClient) -> httpx.Response:
    async with client:
        return await client.get("/v1/user/balance", headers={"authorization": "Bearer sandbox"})


@pytest.mark.anyio
async def test_the_sandbox_connection_gets_the_in_process_sandbox(
    connector: ConnectorSpec,
) -> None:
    client = build_client(resolve_connection(connector, env={}), TimeoutsSpec())
    response = await _balance(client)
    assert response.status_code == 200 and "credits" in response.json()


def test_a_real_connection_gets_explicit_timeouts_and_no_redirects(
    connector: ConnectorSpec,
) -> None:
    connection = resolve_connection(connector, env={"STABILITY_API_KEY": TEST_KEY})
    client = build_client(connection, TimeoutsSpec(connect=5, read=90, write=45, pool=7))
    assert client.timeout == httpx.Timeout(connect=5, read=90, write=45, pool=7)
    assert not client.follow_redirects
    assert str(client.base_url).rstrip("/") == "https://api.stability.ai"
    assert "authorization" not in client.headers
