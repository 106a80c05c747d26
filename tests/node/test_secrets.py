"""The API key never shows: not in logs, output, results, errors, reprs or files written."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from stability_connector.connection import Connection
from stability_connector.errors import ConnectorError
from stability_connector.node import Runtime
from stability_connector.sandbox import Fault, Sandbox

from .conftest import TEST_KEY, png

pytestmark = pytest.mark.anyio


async def test_the_key_is_found_nowhere(
    runtime: Runtime,
    sandbox: Sandbox,
    connection: Connection,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    async def record(action: str, inputs: dict[str, object], **options: object) -> None:
        try:
            result = await runtime.run(action, inputs, connection=connection, **options)  # type: ignore[arg-type]
        except ConnectorError as error:
            seen.extend([str(error), repr(error), json.dumps(error.to_dict(), default=str)])
            seen.extend(repr(a) for a in getattr(error, "attempts", ()))
        else:
            seen.extend([json.dumps(result.to_dict(), default=str), repr(result)])

    await record("generate_image", {"prompt": "a mug", "aspect_ratio": "4:3"})
    await record("generate_image", {"prompt": "a blurword"}, content_filtered="fail")
    await record("generate_image", {"prompt": "a forbiddenword"})
    await record("generate_image", {"prompt": "x", "seed": "nope"})
    await record("generate_image", {"prompt": "<<trigger.nothing>>"})
    sandbox.script([Fault(status=500)] * 5)
    await record("generate_image", {"prompt": "a mug"})
    sandbox.script([Fault(reset="after")] * 5)
    await record("generate_image", {"prompt": "a mug"})
    await record("upscale_creative", {"image": png(256, 256), "prompt": "x"})
    await record("http_request", {"path": "/v1/user/balance", "headers": {"x-test": "1"}})
    await record("http_request", {"path": "https://evil.example/"})
    await record("account_balance", {})
    seen.append(repr(runtime.prepare("generate_image", {"prompt": "a"}, None, connection)))
    seen.append(repr(connection))

    seen.append(caplog.text)
    captured = capsys.readouterr()
    seen += [captured.out, captured.err]
    out_dir = runtime.out_dir
    assert out_dir is not None
    written = [p for p in out_dir.rglob("*") if p.is_file()]
    assert written, "the runs wrote files"
    for path in written:
        assert TEST_KEY.encode() not in path.read_bytes()
        assert TEST_KEY not in str(path)
    for entry in sandbox.journal:
        seen.append(repr(entry))
    assert seen
    for text in seen:
        assert TEST_KEY not in text
        assert TEST_KEY[8:24] not in text  # no part of it either
