from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from stability_connector.workflows.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with Store(tmp_path / "runs.sqlite3") as opened:
        yield opened


@pytest.fixture
def write_workflow(tmp_path: Path) -> Any:
    def write(data: dict[str, Any], name: str = "flow.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    return write
