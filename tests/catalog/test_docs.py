"""The action pages are generated from the definitions and must be current."""

from __future__ import annotations

from pathlib import Path

import pytest

from stability_connector.catalog import credit_range, default_catalog, describe_action, load_catalog
from stability_connector.docs import main, render_action_page, render_docs, rules, write_docs

from .conftest import REPO, MakeCatalog, action_yaml

DOCS = REPO / "docs" / "actions"


def test_every_page_is_current() -> None:
    stale = [
        name
        for name, text in render_docs(default_catalog()).items()
        if not (DOCS / name).is_file() or (DOCS / name).read_text(encoding="utf-8") != text
    ]
    assert stale == [], f"stale pages {stale}: run python -m stability_connector.docs"


def test_no_page_for_an_action_that_is_gone() -> None:
    expected = set(render_docs(default_catalog()))
    assert {p.name for p in DOCS.glob("*.md")} - expected == set()


def test_every_page_says_what_to_do_about_a_wrong_key_and_paid_ones_about_credits() -> None:
    catalog = default_catalog()
    for action_id in ("generate_image", "upscale_creative", "account_balance"):
        page = render_action_page(catalog.action(action_id))
        assert "| 401 |" in page and "STABILITY_API_KEY" in page, action_id
        assert ("| 402 |" in page) == (action_id != "account_balance"), action_id


def test_generate_image_page_has_the_shape_of_the_action_page() -> None:
    page = render_action_page(default_catalog().action("generate_image"))
    for heading in ("## Inputs", "## Sample request", "## Returns", "## Errors", "## Credits"):
        assert heading in page
    # Label, API field, type, required, allowed values.
    assert "| Prompt `prompt` | `prompt` | string | Required |" in page
    assert "16:9 (Landscape) → `16:9`" in page
    assert "PNG → `png`, JPEG → `jpeg`, WebP → `webp`" in page
    assert '"prompt": "<<trigger.prompt>>"' in page
    assert "POST /v2beta/stable-image/generate/core" in page
    assert '"finish_reason": "SUCCESS"' in page
    assert "Use these fields in downstream steps" in page
    # 4:3 is made by a crop, and the page says so.
    assert "cropped centrally to exactly 4:3" in page
    assert "| 403 |" in page


def test_cross_field_rules_are_in_words() -> None:
    sd3 = default_catalog().action("stable_diffusion_3")
    assert (
        "When `mode` is `image-to-image`: `image` and `strength` are required, "
        "`aspect_ratio` is not allowed." in rules(sd3.inputs)
    )
    ultra = default_catalog().action("stable_image_ultra")
    assert "`image` needs `strength`." in rules(ultra.inputs)


def test_index_lists_groups_credits_and_the_legacy_replacements() -> None:
    index = render_docs(default_catalog())["index.md"]
    assert "## Generate" in index and "## Audio" in index
    assert "| [Stable Image Core](stable_image_core.md) `stable_image_core` |" in index
    assert "| 3 credits | current |" in index
    assert "`POST /v2alpha/generation/stable-image/inpaint` | [inpaint](inpaint.md)" in index


def test_write_docs_and_the_module_entry_point(tmp_path: Path, make_catalog: MakeCatalog) -> None:
    catalog = load_catalog(make_catalog(action_yaml("stable_image_core")))
    written = write_docs(tmp_path / "one", catalog)
    assert sorted(p.name for p in written) == ["index.md", "stable_image_core.md"]
    assert main([str(tmp_path / "all")]) == 0
    assert (tmp_path / "all" / "generate_image.md").is_file()


@pytest.mark.parametrize("action_id", ["generate_image", "account_balance"])
def test_describe_action_for_the_command_line(action_id: str) -> None:
    spec = default_catalog().action(action_id)
    brief = describe_action(spec, brief=True)
    assert set(brief) == {"id", "title", "group", "status", "credits", "credits_min", "credits_max"}
    expected = {"generate_image": ("3–8 credits", 3.0, 8.0), "account_balance": ("free", 0.0, 0.0)}
    assert (brief["credits"], brief["credits_min"], brief["credits_max"]) == expected[action_id]
    full = describe_action(spec)
    assert full["example"]["inputs"] == spec.examples[0].inputs
    if action_id == "generate_image":
        aspect = next(f for f in full["fields"] if f["name"] == "aspect_ratio")
        assert {"label": "16:9 (Landscape)", "value": "16:9"} in aspect["options"]
        assert aspect["default"] == "1:1"
        assert [f["name"] for f in full["fields"]][:2] == ["prompt", "negative_prompt"]


def test_price_ranges_of_model_priced_actions() -> None:
    catalog = default_catalog()
    assert credit_range(catalog.action("generate_image")) == (3.0, 8.0)
    assert describe_action(catalog.action("stable_diffusion_3"), brief=True)["credits"] == (
        "3.5–6.5 credits"
    )
    assert credit_range(catalog.action("stable_image_core")) is None
