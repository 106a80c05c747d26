"""The workflow and runs commands as people use them: output, --json, exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from stability_connector.catalog import find_catalog_root
from stability_connector.cli import main

from .helpers import fixable_flow

EXAMPLES = find_catalog_root() / "examples"


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_run_show_log_and_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "runs.sqlite3"
    code, out, err = run(
        capsys,
        "workflow",
        "run",
        EXAMPLES / "prompt_to_upscale.yaml",
        "--trigger",
        EXAMPLES / "prompt_to_upscale.trigger.json",
        "--db",
        db,
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "succeeded"
    assert Path(result["outputs"]["upscale"]["file"]).is_file()
    run_id = result["run_id"]

    code, out, _ = run(capsys, "runs", "list", "--db", db)
    assert code == 0 and run_id in out and "succeeded" in out
    code, out, _ = run(capsys, "runs", "show", run_id, "--db", db)
    assert code == 0 and "generate_image" in out and "upscale_fast" in out
    code, out, _ = run(capsys, "runs", "log", run_id, "--db", db, "--json")
    log: dict[str, Any] = json.loads(out)
    assert [a["path"] for a in log["attempts"]] == [
        "/v2beta/stable-image/generate/sd3",
        "/v2beta/stable-image/upscale/fast",
    ]
    code, out, _ = run(capsys, "runs", "retry", run_id, "--db", db)
    assert code == 0 and "nothing to retry" in out


def test_progress_lines_then_the_outcome_once_when_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "workflow", "run", EXAMPLES / "prompt_to_upscale.yaml",
        "--trigger", EXAMPLES / "prompt_to_upscale.trigger.json", "--db", tmp_path / "r.sqlite3",
    )  # fmt: skip
    assert code == 0, err
    assert "generate: started, 1 node" in err and "upscale: 1/1 done" in err
    assert (out + err).count(" succeeded") == 1 and out.startswith("run ")


def test_a_paused_run_exits_1_and_says_how_to_retry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trigger = tmp_path / "t.json"
    # The sandbox refuses prompts holding its moderation word with 403 (never retried).
    trigger.write_text(json.dumps({"prompt": "a forbiddenword lighthouse"}))
    db = tmp_path / "runs.sqlite3"
    code, out, _ = run(
        capsys, "workflow", "run", EXAMPLES / "prompt_to_upscale.yaml", "--trigger", trigger,
        "--db", db, "--quiet",
    )  # fmt: skip
    assert code == 1
    assert "paused at step generate" in out and "runs retry" in out
    run_id = out.split()[1]
    code, out, _ = run(capsys, "runs", "log", run_id, "--db", db)
    assert code == 1 and "403" in out and "request id" in out


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["workflow", "run", "missing.yaml"], "cannot read the file"),
        (["runs", "show", "nope"], "no run 'nope'"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], words: str
) -> None:
    code, _, err = run(capsys, *args, "--db", tmp_path / "runs.sqlite3")
    assert code == 2 and words in err and "Traceback" not in err


def test_a_trigger_that_does_not_fit_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trigger = tmp_path / "t.json"
    trigger.write_text(json.dumps({"products": []}))
    code, _, err = run(
        capsys, "workflow", "run", EXAMPLES / "product_shots.yaml", "--trigger", trigger,
        "--db", tmp_path / "runs.sqlite3",
    )  # fmt: skip
    assert code == 2 and "trigger.products" in err


def test_estimate(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "workflow", "estimate", EXAMPLES / "product_shots.yaml", "--trigger",
        EXAMPLES / "product_shots.trigger.json", "--json",
    )  # fmt: skip
    assert code == 0
    estimate = json.loads(out)
    assert [(s["step"], s["items"], s["total"]) for s in estimate["steps"]] == [
        ("shot", 4, 14.0),
        ("cutout", 4, 20.0),
        ("large", 4, 8.0),
    ]
    assert estimate["within_budget"] is True


def test_a_run_over_its_budget_is_refused_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = tmp_path / "shots.yaml"
    text = (EXAMPLES / "product_shots.yaml").read_text(encoding="utf-8")
    flow.write_text(text.replace("  credits: 100\n", "  credits: 30\n"))
    assert "credits: 30" in flow.read_text()
    db = tmp_path / "runs.sqlite3"
    code, out, err = run(
        capsys, "workflow", "run", flow, "--trigger", EXAMPLES / "product_shots.trigger.json",
        "--db", db,
    )  # fmt: skip
    assert code == 2
    assert "estimated at 42 credits" in err and "budget of 30" in err
    assert "shot: 4 × 3.5 = 14; cutout: 4 × 5 = 20; large: 4 × 2 = 8" in err
    assert "nothing was sent" in err
    code, out, _ = run(capsys, "runs", "list", "--db", db)
    assert code == 0 and "no runs" in out


def fixable_files(tmp_path: Path, names: list[str]) -> tuple[Path, Path, Path]:
    """A workflow whose last step asks for a format it cannot have (gif), its trigger,
    and a run store."""
    flow = tmp_path / "fixable.yaml"
    flow.write_text(yaml.safe_dump(fixable_flow("gif")))
    trigger = tmp_path / "t.json"
    trigger.write_text(json.dumps({"names": names}))
    return flow, trigger, tmp_path / "runs.sqlite3"


def test_runs_retry_resumes_with_the_corrected_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow, trigger, db = fixable_files(tmp_path, ["a cup", "a pot"])
    code, out, _ = run(capsys, "workflow", "run", flow, "--trigger", trigger, "--db", db, "--quiet")
    assert code == 1 and "paused at step big" in out
    run_id = out.split()[1]

    def sent() -> list[str]:
        main(["runs", "log", run_id, "--db", str(db), "--json"])
        log = json.loads(capsys.readouterr().out)
        return sorted(a["path"] for a in log["attempts"])

    before = sent()
    assert len(before) == 4  # two generations, two cut-outs

    # A file that renames a succeeded step is refused; nothing is sent or stored.
    renamed = fixable_flow("webp")
    renamed["steps"][0]["id"] = "shots"
    renamed["steps"][1]["for_each"] = "<<steps.shots>>"
    flow.write_text(yaml.safe_dump(renamed))
    code, out, err = run(capsys, "runs", "retry", run_id, "--db", db, "--quiet")
    assert code == 2
    assert "steps.shot: step 'shot' succeeded" in err and "no step 'shot'" in err
    assert "nothing was sent" in err and "Traceback" not in err
    assert sent() == before

    # The corrected file (renamed too): the retry says so, and sends only what had not
    # succeeded.
    corrected = fixable_flow("webp")
    corrected["name"] = "fixed_shots"
    flow.write_text(yaml.safe_dump(corrected))
    code, out, err = run(capsys, "runs", "retry", run_id, "--db", db, "--quiet")
    assert code == 0, out + err
    assert "resuming with the corrected workflow definition" in out and str(flow) in out
    assert "vars: changed" in out and "succeeded" in out
    assert "fixed_shots" in run(capsys, "runs", "list", "--db", db)[1]
    # Zero repeated requests: the same generations and cut-outs, plus the two upscales.
    assert sent() == sorted([*before, *["/v2beta/stable-image/upscale/fast"] * 2])
    code, out, _ = run(capsys, "runs", "show", run_id, "--db", db, "--json")
    assert json.loads(out)["file"] == str(flow)


def test_runs_retry_with_a_corrected_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flow, trigger, db = fixable_files(tmp_path, ["a cup"])
    code, out, _ = run(capsys, "workflow", "run", flow, "--trigger", trigger, "--db", db, "--json")
    assert code == 1
    run_id = json.loads(out)["run_id"]
    # Unchanged file: the stored definition, and the same pause.
    code, out, _ = run(capsys, "runs", "retry", run_id, "--db", db, "--json")
    assert code == 1 and json.loads(out)["definition"]["source"] == "stored"
    copy = tmp_path / "fixed.yaml"
    copy.write_text(yaml.safe_dump(fixable_flow("png")))
    code, out, _ = run(capsys, "runs", "retry", run_id, "--workflow", copy, "--db", db, "--json")
    result = json.loads(out)
    assert code == 0 and result["status"] == "succeeded"
    assert result["definition"] == {
        "source": "corrected",
        "file": str(copy),
        "changes": ["vars: changed"],
    }
