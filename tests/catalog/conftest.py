"""A temporary catalog to load: the repository's connector.yaml and schemas, and
only the action files a test gives, so each refusal is tested in isolation."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

MakeCatalog = Callable[..., Path]


def action_yaml(action_id: str) -> dict[str, Any]:
    """A repository action file as data, to copy and break."""
    loaded: dict[str, Any] = yaml.safe_load((REPO / "actions" / f"{action_id}.yaml").read_text())
    return loaded


@pytest.fixture
def make_catalog(tmp_path: Path) -> MakeCatalog:
    def make(*actions: dict[str, Any], connector: dict[str, Any] | None = None) -> Path:
        root = tmp_path / "catalog"
        if root.exists():
            shutil.rmtree(root)
        shutil.copytree(REPO / "schemas", root / "schemas")
        (root / "actions").mkdir()
        data = connector or yaml.safe_load((REPO / "connector.yaml").read_text())
        data["actions"] = [a["id"] for a in actions]
        (root / "connector.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        for action in actions:
            text = yaml.safe_dump(action, sort_keys=False, allow_unicode=True)
            (root / "actions" / f"{action['id']}.yaml").write_text(text)
        return root

    return make
