"""What an engine embedding the connector imports, and that it works as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import stability_connector
from stability_connector import RunContext, run_sync


def test_every_exported_name_resolves() -> None:
    for name in stability_connector.__all__:
        assert getattr(stability_connector, name) is not None, name


def test_importing_the_package_loads_nothing_heavy() -> None:
    probe = (
        "import sys, stability_connector; "
        "print(sorted(m for m in ('httpx', 'jinja2', 'jsonschema', 'PIL') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_run_sync_maps_a_trigger_and_writes_the_image(tmp_path: Path) -> None:
    result = run_sync(
        "generate_image",
        {"prompt": "<<trigger.idea>>", "aspect_ratio": "4:3", "seed": "7"},
        RunContext(trigger={"idea": "a lighthouse at dusk"}),
        out_dir=tmp_path,
    )
    assert result.status == "succeeded"
    assert result.outputs["seed"] == 7
    assert Path(result.outputs["file"]).parent == tmp_path
    assert [a.status for a in result.attempts] == [200]
