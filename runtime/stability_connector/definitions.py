"""The file formats of the catalog, as pydantic models.

``connector.yaml`` is a :class:`ConnectorSpec`, each ``actions/*.yaml`` an
:class:`ActionSpec`. ``schemas/*.schema.json`` are generated from these models
(``stability_connector.catalog.write_format_schemas``), so other languages can
validate the same files. Every model forbids unknown keys: a typo in a definition
is an error, not a silently ignored setting.

Values in ``request`` and ``outputs`` are ``<<templates>>`` rendered by our own
(trusted) definitions against ``inputs`` (the validated node inputs), ``response``
(status, headers, json, media), ``job`` (id) and ``artifact`` (the written file).
A value that renders to ``None`` is not sent.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

Template = str
"""A string that may hold ``<<expression>>`` parts."""

JsonSchema = dict[str, Any]
"""A JSON Schema 2020-12 document (validated with the metaschema by the loader)."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- presentation --------------------------------------------------------------------

Widget = Literal[
    "text", "textarea", "number", "slider", "select", "toggle", "file", "json", "list", "password"
]


class PatternFilter(Strict):
    """Keep the items whose field matches a regular expression (searched anywhere)."""

    pattern: str


ItemMatch = str | list[str] | PatternFilter
"""What an item's key must be: the text, one of the texts, or a pattern match."""


class OptionsSource(Strict):
    """``x-ui.options_from``: where an engine that fills dropdowns at run time gets the
    field's options. It runs ``action`` (free, no required inputs, a JSON response) on
    the user's connection and turns each item of its ``output`` list into an option.
    The field's ``oneOf``/``anyOf`` constants stay the static fallback, for engines
    that cannot list live and for when the call fails."""

    action: str = Field(description="The action that lists the options (catalog id).")
    output: str = Field(description="Its output holding the list of items (an array).")
    value: str = Field(default="id", description="The item key that gives the option's value.")
    label: str | None = Field(
        default=None, description="The item key that gives the option's label (else the value)."
    )
    filter: dict[str, ItemMatch] = Field(
        default_factory=dict,
        description="Keep only items whose key equals the text, is one of the listed "
        "texts, or matches {pattern: regex}.",
    )
    exclude: dict[str, ItemMatch] = Field(
        default_factory=dict,
        description="Then drop items whose key matches in the same way.",
    )


class UiHints(Strict):
    """``x-ui``: how an engine should present one input. Presentation only; rules
    the validator enforces belong in the JSON Schema itself."""

    widget: Widget | None = None
    order: int | None = None
    placeholder: str | None = None
    help: str | None = None
    advanced: bool = False
    show_if: dict[str, Any] | None = Field(
        default=None,
        description="Show the field only when each named field has the value "
        "(or one of the listed values).",
    )
    options_from: OptionsSource | None = Field(
        default=None,
        description="List the options live from another action; the schema's constants "
        "are the fallback.",
    )


class MediaLimits(Strict):
    """``x-media``: what a file input accepts, checked before anything is sent."""

    kind: Literal["image", "audio"]
    formats: list[Literal["png", "jpeg", "webp", "mp3", "wav"]]
    min_width: int | None = None
    max_width: int | None = None
    min_height: int | None = None
    max_height: int | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    max_aspect_ratio: float | None = None
    min_seconds: float | None = None
    max_seconds: float | None = None
    sizes: list[str] | None = Field(
        default=None,
        description="Exact WIDTHxHEIGHT sizes accepted, when the API allows only some.",
    )


# --- request -------------------------------------------------------------------------


class RequestSpec(Strict):
    """The HTTP request an action sends, as data."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: Template = Field(description="Relative to the connection's base URL; may hold templates.")
    encoding: Literal["multipart", "json", "none"] = "none"
    accept: Template | None = Field(default=None, description="The accept header.")
    headers: dict[str, Template] = Field(default_factory=dict)
    query: dict[str, Template] = Field(default_factory=dict)
    body: dict[str, Any] = Field(
        default_factory=dict,
        description="API field -> template (or a JSON value holding templates).",
    )
    files: dict[str, Template] = Field(
        default_factory=dict, description="API file field -> template naming a media input."
    )
    generic: bool = Field(
        default=False,
        description="The action sends a request the user describes (method, path, body); "
        "the runtime confines it to the connection's base URL.",
    )


# --- response ------------------------------------------------------------------------

MediaKind = Literal["image", "audio", "model", "video"]


class JobSpec(Strict):
    """How an asynchronous job is followed: its id, and where its result is fetched."""

    id: Template = "<<response.json.id>>"
    result_path: Template = Field(description="Holds <<job.id>>.")
    accept: Template | None = None


class HookCall(Strict):
    """A named piece of Python the runtime applies to a response, declared here so
    the YAML stays the one place that says what an action does."""

    name: str
    when: Template | None = Field(default=None, description="Apply only when this is truthy.")
    args: dict[str, Any] = Field(default_factory=dict)


class ResponseSpec(Strict):
    """What comes back and how it becomes outputs.

    - ``media``: the body is one media file (or JSON holding it as base64).
    - ``artifacts``: v1 JSON with ``artifacts[]`` (several images, each with seed and
      finish reason).
    - ``job``: the body holds a job id; the runtime polls ``job.result_path`` for media.
    - ``json``: the body is JSON; outputs are extracted from it.
    - ``raw``: anything (the generic request): status, headers and body are returned.
    """

    kind: Literal["media", "artifacts", "job", "json", "raw"]
    media: MediaKind | None = None
    job: JobSpec | None = None
    hooks: list[HookCall] = Field(default_factory=list)


# --- outputs and examples ------------------------------------------------------------


class OutputsSpec(Strict):
    """The outputs a node offers downstream steps. For media responses the standard
    media outputs (file, content_type, size_bytes, seed, finish_reason, filtered,
    credits, request_id) are added from ``schemas/common.yaml``."""

    schema_: JsonSchema = Field(default_factory=dict, alias="schema")
    values: dict[str, Template] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ExampleRequest(Strict):
    """The request an example's inputs must produce on the wire."""

    method: str
    path: str
    accept: str | None = None
    body: dict[str, Any] = Field(default_factory=dict)
    files: list[str] = Field(default_factory=list, description="Names of the file fields sent.")


class Example(Strict):
    title: str
    inputs: dict[str, Any] = Field(description="Node inputs; may map from the context.")
    context: dict[str, Any] = Field(
        default_factory=dict,
        description="The run context the inputs map from (trigger, steps, vars).",
    )
    request: ExampleRequest | None = None
    outputs: dict[str, Any] = Field(
        default_factory=dict, description="Output fields and the values the sandbox returns."
    )


# --- action --------------------------------------------------------------------------

Group = Literal[
    "Generate", "Edit", "Upscale", "Control", "Video", "Audio", "3D", "Account", "Advanced"
]


class ActionSpec(Strict):
    """One action of the catalog: a form, the request it sends, what it returns."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    description: str
    group: Group
    operations: list[str] = Field(
        description="The official operations this action sends, as 'METHOD /path' keys "
        "of the API description."
    )
    status: Literal["current", "legacy", "limited"] = "current"
    credits: float | Template | None = Field(
        default=None,
        description="Credits per successful run; a template when it depends on inputs.",
    )
    credits_note: str | None = None
    inputs: JsonSchema
    request: RequestSpec
    response: ResponseSpec
    outputs: OutputsSpec = Field(default_factory=OutputsSpec)
    errors: dict[str, str] = Field(
        default_factory=dict, description="Status or error name -> what the user should do."
    )
    examples: list[Example] = Field(min_length=1)


# --- connector -----------------------------------------------------------------------


class SecretSpec(Strict):
    env: str = Field(description="The environment variable that holds the key.")


class NamedConnection(Strict):
    """A connection with its own key and, optionally, its own address: ``base_url``,
    which the variable ``base_url_env`` overrides when set (an installed catalog is
    not edited, so a gateway's address comes from the environment)."""

    api_key_env: str
    base_url: str | None = None
    base_url_env: str | None = None


class ConnectionSpec(Strict):
    """How the connector authenticates. The key is a secret: it is read at send
    time from the environment (or given by the engine) and never written anywhere."""

    type: Literal["bearer"] = "bearer"
    header: str = "authorization"
    api_key: SecretSpec
    named: dict[str, NamedConnection] = Field(default_factory=dict)
    test: RequestSpec


class TimeoutsSpec(Strict):
    connect: PositiveFloat = 10.0
    read: PositiveFloat = 120.0
    write: PositiveFloat = 60.0
    pool: PositiveFloat = 30.0


class RetrySpec(Strict):
    """The default retry policy; a workflow may override every field."""

    max_attempts: int = Field(default=5, ge=1, le=5)
    initial_delay: PositiveFloat = 1.0
    max_delay: PositiveFloat = 30.0
    multiplier: PositiveFloat = 2.0
    deadline: PositiveFloat = 600.0
    retry_unknown_outcome: bool = Field(
        default=True,
        description="Retry a paid request whose outcome is unknown (read timeout, reset "
        "after sending); such attempts are marked 'may have been charged'.",
    )


class RateLimitSpec(Strict):
    requests: PositiveInt = 150
    per_seconds: PositiveFloat = 10.0
    penalty_seconds: PositiveFloat = 60.0


class PollingSpec(Strict):
    first_poll_after: float = Field(default=10.0, ge=10.0)
    interval: float = Field(default=10.0, ge=10.0)
    jitter: float = Field(default=2.0, ge=0.0)
    deadline: PositiveFloat = 900.0
    results_expire_after: PositiveFloat = 86400.0


class ConnectorSpec(Strict):
    id: str
    title: str
    description: str
    version: str
    icon: str
    base_url: str
    connection: ConnectionSpec
    client_headers: dict[str, str] = Field(
        description="Identification headers sent with every request "
        "(stability-client-id, stability-client-version)."
    )
    timeouts: TimeoutsSpec = Field(default_factory=TimeoutsSpec)
    retry: RetrySpec = Field(default_factory=RetrySpec)
    rate_limit: RateLimitSpec = Field(default_factory=RateLimitSpec)
    polling: PollingSpec = Field(default_factory=PollingSpec)
    actions: list[str] = Field(
        description="Action ids, in catalog order (files actions/<id>.yaml)."
    )
