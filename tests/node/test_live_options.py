"""Dropdown options listed live (x-ui.options_from) through the runtime, and the static
options when the listing fails."""

from __future__ import annotations

import pytest

from stability_connector.catalog import Catalog
from stability_connector.connection import Connection
from stability_connector.errors import ConnectorError
from stability_connector.node import Runtime
from stability_connector.options import live_options, static_options
from stability_connector.retry import INTERACTIVE_POLICY
from stability_connector.sandbox import Fault, Sandbox
from stability_connector.sandbox.validation import V1_ENGINES

pytestmark = pytest.mark.anyio

V1_ACTIONS = ["v1_text_to_image", "v1_image_to_image", "v1_masking"]


def engines_list_requests(sandbox: Sandbox) -> list[str]:
    return [f"{e.method} {e.path}" for e in sandbox.journal if e.path == "/v1/engines/list"]


@pytest.mark.parametrize("action", V1_ACTIONS)
async def test_engines_are_listed_live_from_the_api(
    runtime: Runtime, sandbox: Sandbox, connection: Connection, action: str
) -> None:
    found = await live_options(runtime, action, "engine_id", connection)
    assert found.live and not found.fell_back
    assert found.source == "v1_engines_list" and found.connection == "test"
    assert engines_list_requests(sandbox) == ["GET /v1/engines/list"]
    # Every generation engine the API lists, labelled with its name; no upscaler.
    expected = [
        {"value": e["id"], "label": e["name"]}
        for e in V1_ENGINES
        if not e["id"].startswith("esrgan-")
    ]
    assert found.options == expected
    assert [a.status for a in found.attempts] == [200]


async def test_the_upscale_engine_lists_only_upscalers(
    runtime: Runtime, connection: Connection
) -> None:
    found = await live_options(runtime, "v1_upscale", "engine_id", connection)
    assert found.live
    assert found.options == [{"value": "esrgan-v1-x2plus", "label": "Real-ESRGAN x2"}]


async def test_a_failed_listing_falls_back_to_the_static_options_and_says_why(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    sandbox.script([Fault(status=500)] * 5)
    found = await live_options(runtime, "v1_text_to_image", "engine_id", connection)
    assert not found.live and found.fell_back
    assert found.fallback_reason is not None
    assert "v1_engines_list failed" in found.fallback_reason and "500" in found.fallback_reason
    assert found.options == static_options(runtime.action("v1_text_to_image"), "engine_id")
    assert {"value": "stable-diffusion-v1-6", "label": "Stable Diffusion 1.6"} in found.options
    # The listing went through the normal sender, with the short listing policy: a form
    # waiting for its dropdown gets one quick retry, then the static options.
    assert INTERACTIVE_POLICY.max_attempts == 2
    assert len(engines_list_requests(sandbox)) == 2
    assert [a.status for a in found.attempts] == [500] * 2


async def test_a_refused_key_falls_back_at_once(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    sandbox.script([Fault(status=401)])
    found = await live_options(runtime, "v1_masking", "engine_id", connection)
    assert found.fell_back and "401" in str(found.fallback_reason)
    assert len(engines_list_requests(sandbox)) == 1


async def test_a_connection_without_a_key_falls_back(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STABILITY_STAGING_API_KEY", raising=False)
    found = await live_options(runtime, "v1_text_to_image", "engine_id", "staging")
    assert found.fell_back and "STABILITY_STAGING_API_KEY" in str(found.fallback_reason)
    assert found.options


async def test_a_field_with_fixed_options_sends_nothing(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    found = await live_options(runtime, "generate_image", "aspect_ratio", connection)
    assert not found.live and not found.fell_back and found.source is None
    assert {"value": "16:9", "label": "16:9 (Landscape)"} in found.options
    assert sandbox.journal == []


async def test_unknown_fields_and_fields_without_options_are_refused(
    runtime: Runtime, connection: Connection
) -> None:
    with pytest.raises(ConnectorError, match="has no field 'engine'"):
        await live_options(runtime, "v1_text_to_image", "engine", connection)
    with pytest.raises(ConnectorError, match="not a dropdown"):
        await live_options(runtime, "generate_image", "prompt", connection)


async def test_a_catalog_gets_a_one_shot_runtime(catalog: Catalog) -> None:
    found = await live_options(catalog, "generate_image", "output_format")
    assert {"value": "png", "label": "PNG"} in found.options
