"""The facts of Stability's official API description, one entry per operation.

``api_facts.json`` is derived from the official OpenAPI description by
``tools/derive_api_facts.py`` and shipped inside the package, so the catalog checks
and the sandbox work in an installed copy without the (large) description.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any


@cache
def load_api_facts() -> dict[str, Any]:
    """The whole facts document: ``{"source": {...}, "operations": {"METHOD /path": {...}}}``.

    Cached and shared: treat it as read-only.
    """
    text = files("stability_connector").joinpath("api_facts.json").read_text(encoding="utf-8")
    facts: dict[str, Any] = json.loads(text)
    return facts


def operations() -> dict[str, dict[str, Any]]:
    """Official operations by key (``"POST /v2beta/stable-image/generate/core"``)."""
    ops: dict[str, dict[str, Any]] = load_api_facts()["operations"]
    return ops
