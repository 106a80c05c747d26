"""The wheel installs and runs outside the repository, and the README's first command
does what it promises on a fresh virtual environment."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _env_without_key() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STABILITY_", "PYTHON"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _readme_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [block.strip() for block in blocks]


def _tracked_copy(target: Path) -> Path:
    """The repository as a clone has it: tracked files only."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source = ROOT / name.decode()
        if source.is_file():
            destination = target / name.decode()
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
    return target


def _assert_lighthouse_png(out_dir: Path, printed: str) -> None:
    pngs = sorted(out_dir.glob("*.png"))
    assert len(pngs) == 1, f"expected one PNG in {out_dir}, found {pngs}"
    with Image.open(pngs[0]) as image:
        assert image.format == "PNG"
        width, height = image.size
    # Stable Image Core renders 1.5 megapixels with sides in multiples of 64, so a
    # 16:9 request comes back as the nearest such size (1664x960).
    assert (width, height) == (1664, 960), (width, height)
    assert str(pngs[0].name) in printed
    assert re.search(r"^seed\s+\d+$", printed, re.M), printed
    assert re.search(r"^finish_reason\s+SUCCESS$", printed, re.M), printed


def test_wheel_installs_and_runs_from_another_directory(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--outdir",
            str(dist),
            str(_tracked_copy(tmp_path / "src")),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("stability_connector-*.whl")
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        env=_env_without_key(),
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    check = subprocess.run(
        [
            str(python),
            "-c",
            "import stability_connector.catalog as c; print(c.default_catalog().root)",
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
        env=_env_without_key(),
    )
    assert "site-packages" in check.stdout, "the catalog must come from the installed package"

    command = env_dir / "bin" / "stability-connector"
    done = subprocess.run(
        [
            str(command),
            "run",
            "generate_image",
            "-i",
            "prompt=a lighthouse at dusk",
            "-i",
            "aspect_ratio=16:9 (Landscape)",
            "--out",
            "images",
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env=_env_without_key(),
    )
    assert done.returncode == 0, done.stderr
    assert "sandbox" in done.stderr
    _assert_lighthouse_png(elsewhere / "images", done.stdout)

    listing = subprocess.run(
        [str(command), "actions", "list"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env=_env_without_key(),
    )
    assert listing.returncode == 0 and "generate_image" in listing.stdout


def test_readme_first_command_makes_a_16_9_png(tmp_path: Path) -> None:
    first, second = _readme_commands()[:2]
    assert "pytest" in second, "the README's second command runs the tests"
    checkout = _tracked_copy(tmp_path / "checkout")
    done = subprocess.run(
        ["bash", "-c", first],
        cwd=checkout,
        capture_output=True,
        text=True,
        env=_env_without_key(),
    )
    assert done.returncode == 0, done.stderr
    _assert_lighthouse_png(checkout / "out", done.stdout)
