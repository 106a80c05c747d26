"""Templates: what a workflow author's <<…>> gives, and what it refuses, with which words."""

from __future__ import annotations

from typing import Any

import pytest

from stability_connector import templates
from stability_connector.errors import TemplateError

CONTEXT = templates.context_names(
    trigger={"prompt": "a lighthouse", "style": "oil", "count": 3, "tags": ["a", "b"]},
    steps={"make_prompt": {"text": "a red mug", "image": b"\x89PNG-bytes", "meta": {"n": 1.5}}},
    vars={"size": "large"},
)


def render(source: str, context: dict[str, Any] = CONTEXT) -> Any:
    return templates.render("prompt", source, context)


def error(source: str, context: dict[str, Any] = CONTEXT) -> TemplateError:
    with pytest.raises(TemplateError) as caught:
        render(source, context)
    return caught.value


# --- whole references keep their type; mixed text is text ----------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("<<trigger.count>>", 3),
        ("<< trigger.count >>", 3),
        ("<<trigger.tags>>", ["a", "b"]),
        ("<<steps.make_prompt.image>>", b"\x89PNG-bytes"),
        ("<<steps.make_prompt.meta>>", {"n": 1.5}),
        ("<<steps.make_prompt.meta.n>>", 1.5),
        ("<<trigger['prompt']>>", "a lighthouse"),
        ("<<trigger.prompt | upper>>", "A LIGHTHOUSE"),
    ],
)
def test_a_whole_reference_keeps_the_type(source: str, expected: Any) -> None:
    value = render(source)
    assert value == expected
    assert type(value) is type(expected)


def test_mixed_text_is_a_string() -> None:
    assert render("<<trigger.prompt>>, <<vars.size>>, x<<trigger.count>>") == (
        "a lighthouse, large, x3"
    )
    assert render("count: <<trigger.count>>") == "count: 3"


def test_text_that_looks_like_data_stays_text() -> None:
    # What NativeEnvironment would turn into a list or a bool stays the user's string.
    context = templates.context_names(trigger={"a": "[1, 2]", "b": "True", "c": "42"})
    assert render("<<trigger.a>>", context) == "[1, 2]"
    assert render("<<trigger.b>>", context) == "True"
    assert render("<<trigger.c>>", context) == "42"
    assert render("[1, 2]") == "[1, 2]"


def test_values_from_upstream_are_never_rendered_again() -> None:
    context = templates.context_names(
        trigger={"prompt": "<<vars.secret>> and <% for x in y %>"}, vars={"secret": "s3cr3t"}
    )
    assert render("<<trigger.prompt>>", context) == "<<vars.secret>> and <% for x in y %>"
    assert render("say <<trigger.prompt>>", context) == "say <<vars.secret>> and <% for x in y %>"


def test_inputs_are_resolved_through_lists_and_objects() -> None:
    inputs = {
        "prompt": "<<trigger.prompt>>",
        "text_prompts": [{"text": "<<steps.make_prompt.text>>", "weight": 1}],
        "count": "<<trigger.count>>",
        "raw": b"bytes",
        "n": 7,
    }
    assert templates.resolve_inputs(inputs, CONTEXT) == {
        "prompt": "a lighthouse",
        "text_prompts": [{"text": "a red mug", "weight": 1}],
        "count": 3,
        "raw": b"bytes",
        "n": 7,
    }


def test_old_style_braces_are_plain_text() -> None:
    assert render("{{ 7*7 }} <<trigger.count>>") == "{{ 7*7 }} 3"


def test_comments_and_blocks_use_their_own_delimiters() -> None:
    assert render("<# note #>a<% if trigger.count > 2 %>b<% endif %>") == "ab"
    assert render("<% for t in trigger.tags %><<t>>;<% endfor %>") == "a;b;"


def test_item_exists_only_inside_a_loop() -> None:
    looping = templates.context_names(trigger={}, item={"name": "mug"}, in_loop=True)
    assert render("<<item.name>>", looping) == "mug"
    assert "only inside a loop" in str(error("<<item.name>>"))


def test_a_payload_field_named_like_a_method_is_the_field() -> None:
    context = templates.context_names(trigger={"items": [1, 2], "count": 5, "keys": "k"})
    assert render("<<trigger.items>>", context) == [1, 2]
    assert render("<<trigger.count>>", context) == 5
    assert render("<<trigger.keys>>", context) == "k"


# --- undefined names ---------------------------------------------------------------------


def test_an_undefined_field_names_the_field_the_expression_and_what_exists() -> None:
    caught = error("<<trigger.promt>>")
    assert caught.field == "prompt"
    assert caught.expression == "<<trigger.promt>>"
    assert str(caught) == (
        "prompt: template '<<trigger.promt>>' — 'trigger' has no field 'promt'; "
        "it has: prompt, style, count, tags"
    )


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("<<steps.make_promt.text>>", "'steps' has no field 'make_promt'; it has: make_prompt"),
        ("<<steps.make_prompt.txt>>", "'steps.make_prompt' has no field 'txt'"),
        ("<<trigger.tags[5]>>", "'trigger.tags' has 2 items; there is no item 5"),
        ("<<trigger.prompt.size>>", "'trigger.prompt' is text, it has no field 'size'"),
        ("<<trigge.prompt>>", "'trigge' is not defined; names: steps, trigger, vars"),
        ("a <<vars.missing>> b", "'vars' has no field 'missing'; it has: size"),
        # The loop variable is not the culprit: range is no name templates have.
        ("<% for i in range(3) %><<i>><% endfor %>", "'range' is not defined"),
    ],
)
def test_undefined_references_are_explained(source: str, words: str) -> None:
    assert words in str(error(source))


def test_errors_do_not_echo_values_from_the_context() -> None:
    context = templates.context_names(trigger={"token": "s3cr3t-value"})
    assert "s3cr3t-value" not in str(error("<<trigger.token.x>>", context))
    assert "s3cr3t-value" not in str(error("<<trigger.nope>>", context))


# --- hostile templates ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "<<trigger.prompt.__class__>>",
        "<<trigger.__class__.__mro__>>",
        "<<trigger.prompt.__class__.__base__.__subclasses__()>>",
        "<<trigger._private>>",
        "<<trigger.prompt.format(1)>>",
        "<<'{0.__class__}'.format(trigger)>>",
        "<<trigger|attr('__class__')>>",
        "<<trigger.tags.append('z')>>",
        "<<trigger.update({'a': 1})>>",
        "<<trigger.pop('prompt')>>",
        "<<'%s' % trigger>>",
        "<<range(10)>>",
        "<<lipsum()>>",
        "<<cycler(1)>>",
        "<<dict(a=1)>>",
        "<<namespace()>>",
        "<<joiner()>>",
        "<<trigger.prompt|center(100000000)>>",
        "<<trigger.prompt|indent(100000000, true)>>",
        "<% include 'x' %>",
        "<% import 'x' as y %>",
        "<% extends 'x' %>",
        "<% macro f() %>x<% endmacro %>",
        "<% for x in trigger.tags recursive %><<loop(x)>><% endfor %>",
        "<<x",
    ],
)
def test_hostile_templates_are_template_errors(source: str) -> None:
    caught = error(source)
    assert caught.field == "prompt"
    assert "Traceback" not in str(caught)


def test_huge_output_is_refused() -> None:
    assert "would build more than" in str(error("<<'x' * 100000000>>"))
    assert "would build more than" in str(error("<<trigger.tags * 10000000>>"))
    assert "exponents above" in str(error("<<10 ** 100000>>"))
    big = templates.context_names(trigger={"text": "y" * 600_000})
    assert "join would build" in str(error("<<[trigger.text, trigger.text]|join('-')>>", big))
    assert "replace would build" in str(error("<<trigger.text|replace('y', 'yy')>>", big))
    assert "renders more than" in str(error("<<trigger.text>><<trigger.text>>", big))


def test_loops_are_bounded() -> None:
    many = templates.context_names(trigger={"n": list(range(1000))})
    nested = "<% for a in trigger.n %><% for b in trigger.n %><% endfor %><% endfor %>"
    assert f"loops ran more than {templates.MAX_LOOP_ITERATIONS} times" in str(error(nested, many))
    # A loop of a reasonable size is fine.
    assert render("<% for a in trigger.n[:5] %><<a>><% endfor %>", many) == "01234"


def test_source_size_and_nesting_are_bounded() -> None:
    assert "longer than" in str(error("<<trigger.prompt>>" + "x" * templates.MAX_TEMPLATE_CHARS))
    assert "nested too deeply" in str(error("<<" + "(" * 500 + "1" + ")" * 500 + ">>"))
    deep: Any = "<<trigger.prompt>>"
    for _ in range(templates.MAX_DEPTH + 2):
        deep = [deep]
    with pytest.raises(TemplateError, match="nested more than"):
        templates.resolve_inputs({"prompt": deep}, CONTEXT)


def test_a_long_plain_prompt_is_not_a_template() -> None:
    text = "word " * 5000
    assert render(text) == text


# --- definition templates -------------------------------------------------------------------


def test_definition_templates_read_absent_optional_inputs_as_none() -> None:
    scope = templates.definition_scope({"prompt": "a mug", "seed": 42})
    body = {
        "prompt": "<<inputs.prompt>>",
        "negative_prompt": "<<inputs.negative_prompt>>",
        "seed": "<<inputs.seed>>",
        "nested": ["<<inputs.missing>>", "x"],
    }
    assert templates.render_definition("request.body", body, scope) == {
        "prompt": "a mug",
        "seed": 42,
        "nested": ["x"],
    }


def test_definition_template_errors_name_the_place() -> None:
    scope = templates.definition_scope({}, response={"json": {"id": "x"}})
    with pytest.raises(TemplateError) as caught:
        templates.render_definition("a: outputs.values.x", "<<response.json.idd>>", scope)
    assert caught.value.field == "a: outputs.values.x"
    assert "'response.json' has no field 'idd'; it has: id" in str(caught.value)


# --- the fast path for simple expressions gives what Jinja gives ---------------------------

FAST_CASES = [
    "<<trigger.count if trigger.count > 2 else 0>>",
    "<<trigger.style == 'oil' and vars.size != 'small'>>",
    "<<not trigger.tags>>",
    "<<trigger.prompt.upper()>> and <<trigger.prompt.startswith('a')>>",
    "<<trigger.style or 'none'>>",
    "<<{'a': trigger.count, 'b': [trigger.style, 1]}>>",
    "<<trigger['tags'][1]>>",
    "<<'li' in trigger.prompt>>",
    "<<trigger.count not in [1, 2]>>",
    "<<trigger.count <= 3>> <<trigger.count >= 4>> <<trigger.count < 1>>",
    "<<steps.make_prompt.meta.n>>x",
    "<<trigger.missing if trigger.count else 1>>",  # undefined: Jinja's error
    "<<trigger.tags[5]>>",  # out of range: Jinja's undefined
    "<<trigger.count.upper()>>",  # not a str method call: Jinja's error
    "<<trigger.__class__>>",  # refused by the sandbox
]


def outcome(source: str) -> tuple[str, Any]:
    try:
        return ("value", render(source))
    except TemplateError as refused:
        return ("error", str(refused))


@pytest.mark.parametrize("source", FAST_CASES)
def test_the_fast_path_agrees_with_jinja(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert templates._fast(source) is not None  # the case takes the fast path
    fast = outcome(source)
    monkeypatch.setattr(templates, "_fast", lambda source: None)
    assert fast == outcome(source)


def test_compiled_definitions_give_what_jinja_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    definition = {
        "path": "/v2/<<inputs.model or 'core'>>",
        "body": {
            "ratio": "<<'16:9' if inputs.aspect_ratio == '4:3' else inputs.aspect_ratio>>",
            "seed": "<<inputs.seed>>",
            "absent": "<<inputs.nothing>>",
            "list": ["<<inputs.seed>>", "plain", "<<inputs.nothing>>"],
            "upper": "<<(inputs.output_format or 'png').upper()>>",
        },
    }
    cases = [
        (
            {"aspect_ratio": "4:3", "seed": 7},
            {
                "path": "/v2/core",
                "body": {"ratio": "16:9", "seed": 7, "list": [7, "plain"], "upper": "PNG"},
            },
        ),
        (
            {"model": "ultra", "output_format": "jpeg"},
            {"path": "/v2/ultra", "body": {"list": ["plain"], "upper": "JPEG"}},
        ),
    ]
    compiled = templates.compile_definition("request", definition)
    for inputs, expected in cases:
        assert compiled(templates.definition_scope(inputs)) == expected
    # The same through Jinja alone (no fast paths).
    monkeypatch.setattr(templates, "_fast", lambda source: None)
    monkeypatch.setattr(templates, "_simple_path", lambda source: None)
    jinja_only = templates.compile_definition("request", definition)
    for inputs, expected in cases:
        assert jinja_only(templates.definition_scope(inputs)) == expected
