"""An offline Stability API: every operation of the official description, answered
locally with real media, real errors, credits, rate limits, jobs and faults.

Use it in-process::

    from stability_connector.sandbox import Sandbox, SandboxConfig

    sandbox = Sandbox(SandboxConfig(credits=100.0))
    async with sandbox.client(api_key="sk-test") as client:   # httpx.AsyncClient
        r = await client.post("/v2beta/stable-image/generate/core",
                              files={"none": ""}, data={"prompt": "a lighthouse"})
    sandbox.journal[-1].fields["prompt"]       # what was sent
    sandbox.balance("sk-test")                 # 97.0

or on loopback for other processes: ``stability-connector sandbox --port 8765`` (the CLI
adds the command with :func:`add_sandbox_command`, or :func:`add_sandbox_arguments` +
:func:`run_sandbox_command` on a parser of its own), or :func:`serve` /
:func:`serve_in_thread` from Python.

What it does, as the real API documents:

- ``authorization: Bearer <key>`` is required (401); v2 bodies must be multipart/form-data
  (400 ``bad_request`` otherwise); field names, enums, ranges, lengths, defaults, media
  limits and required combinations are checked (400 ``{id, name, errors[]}``, every
  problem at once; v1 answers ``{id, name, message}``); bodies over 10 MiB get 413
  (Stable Audio: 50 / 100 MiB). Unknown extra fields are ignored.
- Results: ``accept: image/*`` (or ``audio/*``, ``video/*``, ``*/*``) gives raw bytes with
  ``seed``, ``finish-reason`` and ``x-request-id`` headers; ``application/json`` gives
  ``{image|audio|video, seed, finish_reason}``. Sizes follow each operation (Core 1.5 MP,
  Ultra/SD 3.5/Style 1 MP per aspect ratio, edits and control keep the input's size,
  outpaint adds the requested pixels, conservative/creative upscale 4 MP, fast 4x).
  The same request with the same seed gives the same bytes; seed 0 or none picks one.
- Asynchronous operations answer ``{id}``; their results call answers 202
  ``{id, status: "in-progress"}`` for ``job_seconds`` (default 20 s of the sandbox clock),
  then 200 with the media; unknown, expired (24 h) or another key's ids get 404.
- Credits per key, charged per successful result at the documented prices (jobs when
  their result is ready); 402 when the balance cannot cover a request.
- 150 requests per 10 s per key, then 429 and a 60 s timeout (no ``Retry-After`` unless
  ``retry_after=True``).
- Moderation: a prompt with a word of ``block_words`` (default ``forbiddenword``) gets
  403 ``content_moderation``; with a word of ``filter_words`` (default ``blurword``) the
  image comes back blurred with finish reason ``CONTENT_FILTERED``.
- Faults (:mod:`.faults` documents the spec grammar): statuses with or without
  ``Retry-After``, connection resets before or after the response starts, truncated
  bodies, latency — random from a seed, or scripted with :meth:`Sandbox.script`.
- A journal of every request (:class:`JournalEntry`; also ``GET /_sandbox/journal``, see
  :mod:`.admin`). The API key never appears in it, in logs or in errors.

Deliberate choices where the description is silent or contradicts itself: erase, inpaint
and search-and-replace keep the input's size (the prose says 4 MP); v1 generation costs
1 credit per image and v1 upscale 0.2 (not stated); v2alpha prices in cents are taken as
credits; ``sd3.5-flash`` and the re-routed SD 3.0 model names are accepted for ``model``.
"""

from __future__ import annotations

import functools

from .config import DEFAULT_BLOCK_WORDS, DEFAULT_FILTER_WORDS, SandboxConfig, default_jobs_dir
from .core import SANDBOX_BASE_URL, Sandbox
from .faults import Fault, FaultPlan, FaultSpecError, parse_fault, parse_fault_spec
from .server import (
    RunningSandbox,
    add_sandbox_arguments,
    add_sandbox_command,
    run_sandbox_command,
    serve,
    serve_in_thread,
)
from .state import JournalEntry

__all__ = [
    "DEFAULT_BLOCK_WORDS",
    "DEFAULT_FILTER_WORDS",
    "SANDBOX_BASE_URL",
    "Fault",
    "FaultPlan",
    "FaultSpecError",
    "JournalEntry",
    "RunningSandbox",
    "Sandbox",
    "SandboxConfig",
    "add_sandbox_arguments",
    "add_sandbox_command",
    "default_sandbox",
    "parse_fault",
    "parse_fault_spec",
    "run_sandbox_command",
    "serve",
    "serve_in_thread",
]


@functools.cache
def default_sandbox() -> Sandbox:
    """The process-wide sandbox that connections without an API key talk to. Its jobs
    are kept as files, so the next command (``run --resume-id``, ``runs retry``) finds
    a job this one started."""
    return Sandbox(SandboxConfig(jobs_dir=default_jobs_dir()))
