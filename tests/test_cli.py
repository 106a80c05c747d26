"""The command line as a person uses it: what it prints, what it writes, how it fails.

Commands run in-process through ``cli.main`` against the built-in sandbox (no key
set), which the tests replace with one whose jobs finish at once so asynchronous
actions can be started, then picked up by id.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from stability_connector import cli, sandbox
from stability_connector.catalog import default_catalog
from stability_connector.sandbox import Sandbox, SandboxConfig

ROOT = Path(__file__).resolve().parents[1]
CATALOG = default_catalog()


@pytest.fixture
def box(monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    instance = Sandbox(SandboxConfig(job_seconds=0.0))
    monkeypatch.setattr(sandbox, "default_sandbox", lambda: instance)
    monkeypatch.chdir(ROOT)  # example inputs name files under examples/media/
    return instance


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_actions_list_shows_every_action_by_group(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "actions", "list")
    assert code == 0
    for action_id in CATALOG.actions:
        assert action_id in out
    assert "\nGenerate\n" in out and "\nAudio\n" in out
    code, out, _ = run_cli(capsys, "actions", "list", "--json")
    listed = json.loads(out)
    assert [a["id"] for a in listed] == list(CATALOG.actions)


def test_actions_show_gives_options_label_to_value(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "actions", "show", "generate_image")
    assert code == 0
    assert "16:9 (Landscape) → 16:9" in out
    assert "PNG → png" in out
    assert "prompt (string, required)" in out
    code, out, _ = run_cli(capsys, "actions", "show", "generate_image", "--json")
    described = json.loads(out)
    fields = {f["name"]: f for f in described["fields"]}
    assert {"label": "1:1 (Square)", "value": "1:1"} in fields["aspect_ratio"]["options"]
    assert described["example"]["inputs"]


def test_unknown_action_is_named_with_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "actions", "show", "generate_imag")
    assert code != 0
    assert "unknown action 'generate_imag'" in err and "generate_image" in err
    assert "Traceback" not in err


def test_run_writes_the_image_and_prints_outputs(
    box: Sandbox, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run_cli(
        capsys,
        "run", "generate_image",
        "-i", "prompt=a lighthouse at dusk",
        "-i", "aspect_ratio=16:9 (Landscape)",
        "-i", "seed=42",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 0, err
    assert "sandbox" in err
    (png,) = tmp_path.glob("*.png")
    with Image.open(png) as image:
        assert image.size == (1664, 960)
    assert f"file           {png}" in out
    assert "seed           42" in out and "finish_reason  SUCCESS" in out
    assert "characters of base64>" in out, "base64 is summarised, not dumped"
    (sent,) = [e for e in box.journal if e.path.endswith("/generate/core")]
    assert sent.fields["aspect_ratio"] == "16:9" and sent.fields["seed"] == "42"


def test_bad_input_names_fields_and_sends_nothing(
    box: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        capsys, "run", "generate_image", "-i", "prompt=", "-i", "aspect_ratio=5:7", "-i", "seed=x"
    )
    assert code == 2
    assert "Traceback" not in err + out
    assert "prompt:" in err
    assert "aspect_ratio: '5:7' is not one of the options" in err
    assert "16:9 (Landscape)" in err
    assert "seed: 'x' is not a whole number" in err
    assert box.journal == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-i", "prompt"], "write it as KEY=VALUE"),
        (["--inputs", "missing.json"], "does not exist"),
        (["-i", "prompt=<<trigger.nothing>>"], "trigger"),
    ],
)
def test_malformed_command_lines_are_explained(
    box: Sandbox, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run_cli(capsys, "run", "generate_image", *argv)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert box.journal == []


def test_inputs_map_from_a_context_file(
    box: Sandbox, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    context = tmp_path / "context.json"
    context.write_text(json.dumps({"trigger": {"idea": "a red kite", "ratio": "9:16 (Portrait)"}}))
    inputs = tmp_path / "inputs.json"
    inputs.write_text(
        json.dumps({"prompt": "<<trigger.idea>> over hills", "aspect_ratio": "<<trigger.ratio>>"})
    )
    code, out, err = run_cli(
        capsys, "run", "generate_image", "--inputs", str(inputs), "--context", str(context),
        "--out", str(tmp_path), "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "succeeded"
    assert Path(result["outputs"]["file"]).exists()
    (sent,) = box.journal
    assert sent.fields["prompt"] == "a red kite over hills"
    assert sent.fields["aspect_ratio"] == "9:16"


def _example_files(
    action_id: str, directory: Path, context: dict[str, Any] | None = None
) -> list[str]:
    example = CATALOG.action(action_id).examples[0]
    inputs = directory / f"{action_id}-inputs.json"
    inputs.write_text(json.dumps(example.inputs))
    context_file = directory / f"{action_id}-context.json"
    context_file.write_text(json.dumps(context if context is not None else example.context))
    return ["--inputs", str(inputs), "--context", str(context_file), "--out", str(directory)]


def _start_relight_job(capsys: pytest.CaptureFixture[str], directory: Path) -> str:
    files = _example_files("replace_background_and_relight", directory)
    code, out, err = run_cli(
        capsys, "run", "replace_background_and_relight", *files, "--no-wait", "--json"
    )
    assert code == 0, err
    return str(json.loads(out)["job_id"])


@pytest.mark.parametrize("action_id", list(CATALOG.actions))
def test_every_action_runs_from_the_command_line(
    action_id: str, box: Sandbox, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spec = CATALOG.action(action_id)
    if action_id == "fetch_result":  # it picks up a job some other step started
        job_id = _start_relight_job(capsys, tmp_path)
        files = _example_files(action_id, tmp_path, {"trigger": {"job_id": job_id}})
    else:
        files = _example_files(action_id, tmp_path)
    if spec.response.kind == "job" and spec.request.method == "POST":
        code, out, err = run_cli(capsys, "run", action_id, *files, "--no-wait", "--json")
        assert code == 0, err
        started = json.loads(out)
        assert started["status"] == "pending" and started["job_id"]
        code, out, err = run_cli(
            capsys, "run", action_id, *files, "--resume-id", started["job_id"], "--json"
        )
        posts = [e for e in box.journal if e.method == "POST"]
        assert len(posts) == 1, "resuming a job never starts it again"
    else:
        code, out, err = run_cli(capsys, "run", action_id, *files, "--json")
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    assert result["status"] == "succeeded"
    if spec.response.kind in ("media", "job", "artifacts"):
        written = [Path(a["path"]) for a in result["artifacts"]]
        assert written and all(p.is_file() and p.stat().st_size > 0 for p in written)
        assert all(p.parent == tmp_path for p in written)


def test_schema_writes_the_whole_catalog(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "catalog.json"
    code, _, _ = run_cli(capsys, "schema", "-o", str(target))
    assert code == 0
    document = json.loads(target.read_text())
    assert json.dumps(document, sort_keys=True) == json.dumps(CATALOG.document(), sort_keys=True)


def test_validate_reports_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "validate")
    assert code == 0
    assert f"{len(CATALOG.actions)} actions" in out


def test_a_job_started_by_one_command_is_fetched_by_the_next(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each command has its own built-in sandbox; the job is found through its files."""
    monkeypatch.chdir(ROOT)
    config = SandboxConfig(job_seconds=0.0, jobs_dir=tmp_path / "jobs")
    starting, fetching = Sandbox(config), Sandbox(config)
    monkeypatch.setattr(sandbox, "default_sandbox", lambda: starting)
    files = _example_files("upscale_creative", tmp_path)
    code, out, err = run_cli(capsys, "run", "upscale_creative", *files, "--no-wait")
    assert code == 0, err
    job_id = json.loads(
        run_cli(capsys, "run", "upscale_creative", *files, "--no-wait", "--json")[1]
    )["job_id"]
    assert "--resume-id" in out

    monkeypatch.setattr(sandbox, "default_sandbox", lambda: fetching)
    code, out, err = run_cli(
        capsys, "run", "upscale_creative", *files, "--resume-id", job_id, "--json"
    )
    assert code == 0, err
    assert json.loads(out)["status"] == "succeeded"
    assert [e.method for e in fetching.journal] == ["GET"]  # fetched, not started again
