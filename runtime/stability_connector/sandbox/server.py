"""Serving the sandbox on loopback with uvicorn, and the ``sandbox`` command."""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from .config import DEFAULT_BLOCK_WORDS, DEFAULT_FILTER_WORDS, SandboxConfig
from .core import Sandbox
from .faults import FaultSpecError, parse_fault_spec

__all__ = [
    "RunningSandbox",
    "add_sandbox_arguments",
    "add_sandbox_command",
    "run_sandbox_command",
    "serve",
    "serve_in_thread",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the sandbox serves on loopback only (127.0.0.1, ::1), not {host!r}")


def _uvicorn_config(sandbox: Sandbox, host: str, port: int, log_level: str) -> uvicorn.Config:
    # Idle connections stay open 75 s (uvicorn's default is 5 s): a busy client reusing a
    # pooled connection should not meet a close it did not ask for; only faults cut.
    return uvicorn.Config(
        sandbox.app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=2,
        timeout_keep_alive=75,
        server_header=False,
    )


def base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    config: SandboxConfig | None = None,
    *,
    log_level: str = "info",
    announce: bool = True,
) -> None:
    """Serve a sandbox on ``host:port`` (loopback only) until interrupted."""
    _check_loopback(host)
    sandbox = Sandbox(config)
    server = uvicorn.Server(_uvicorn_config(sandbox, host, port, log_level))
    if announce:
        keys = "any API key" if sandbox.config.keys is None else "one of the given keys"
        print(f"Stability API sandbox at {base_url(host, port)}", flush=True)
        print(f"  use it as the API base URL with {keys}; Ctrl+C stops it", flush=True)
    server.run()


@dataclass
class RunningSandbox:
    """A sandbox served by uvicorn in a background thread."""

    sandbox: Sandbox
    server: uvicorn.Server
    thread: threading.Thread
    host: str
    port: int

    @property
    def base_url(self) -> str:
        return base_url(self.host, self.port)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serve_in_thread(
    sandbox: Sandbox | None = None,
    host: str = DEFAULT_HOST,
    port: int = 0,
    *,
    log_level: str = "warning",
) -> Iterator[RunningSandbox]:
    """Serve ``sandbox`` on loopback in a thread for the ``with`` block (port 0: a free
    port). Yields the running server; its ``base_url`` is where to send requests."""
    _check_loopback(host)
    sandbox = sandbox or Sandbox()
    port = port or _free_port(host)
    server = uvicorn.Server(_uvicorn_config(sandbox, host, port, log_level))
    thread = threading.Thread(target=server.run, name="stability-sandbox", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the sandbox could not start on {base_url(host, port)}")
        thread.join(0.01)
    running = RunningSandbox(sandbox, server, thread, host, port)
    try:
        yield running
    finally:
        running.stop()


# --- command line --------------------------------------------------------------------


def add_sandbox_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``stability-connector sandbox``."""
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="loopback address (default %(default)s)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="port (default %(default)s; 0 picks a free one)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="extra delay before every answer",
    )
    parser.add_argument(
        "--faults",
        metavar="SPEC",
        help='random faults, e.g. "503:0.2,429+retry-after=2:0.1,reset:0.05,seed=7"',
    )
    parser.add_argument(
        "--keys", metavar="KEY,...", help="accept only these API keys (default: any non-empty key)"
    )
    parser.add_argument(
        "--credits",
        type=float,
        default=1000.0,
        metavar="N",
        help="starting credits of each key (default %(default)s)",
    )
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=150,
        metavar="N",
        help="requests per key per window before 429 (default %(default)s)",
    )
    parser.add_argument(
        "--rate-window",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="the rate limit's window (default %(default)s)",
    )
    parser.add_argument(
        "--timeout-seconds",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long a key is locked out after a 429 (default %(default)s)",
    )
    parser.add_argument(
        "--block-words",
        metavar="WORD,...",
        help="prompts with these words get 403 content_moderation (default: "
        + ",".join(DEFAULT_BLOCK_WORDS)
        + ")",
    )
    parser.add_argument(
        "--filter-words",
        metavar="WORD,...",
        help="prompts with these words succeed blurred, as CONTENT_FILTERED (default: "
        + ",".join(DEFAULT_FILTER_WORDS)
        + ")",
    )
    parser.add_argument(
        "--job-seconds",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="how long asynchronous jobs run (default %(default)s)",
    )
    parser.add_argument(
        "--retry-after",
        action="store_true",
        help="add Retry-After to rate-limit answers (the real API sends none)",
    )
    parser.add_argument("--quiet", action="store_true", help="no request log")


def _words(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    return default if text is None else tuple(w.strip() for w in text.split(",") if w.strip())


def config_from_arguments(args: argparse.Namespace) -> SandboxConfig:
    keys = [k.strip() for k in args.keys.split(",") if k.strip()] if args.keys else None
    if args.faults:
        parse_fault_spec(args.faults)  # report a bad spec before starting
    return SandboxConfig(
        credits=args.credits,
        keys=keys,
        latency=args.latency,
        faults=args.faults or None,
        rate_limit=args.rate_limit,
        rate_window=args.rate_window,
        timeout_seconds=args.timeout_seconds,
        block_words=_words(args.block_words, DEFAULT_BLOCK_WORDS),
        filter_words=_words(args.filter_words, DEFAULT_FILTER_WORDS),
        job_seconds=args.job_seconds,
        retry_after=args.retry_after,
    )


def run_sandbox_command(args: argparse.Namespace) -> int:
    """Run ``stability-connector sandbox`` with parsed arguments; returns the exit code."""
    try:
        config = config_from_arguments(args)
        port = args.port or _free_port(args.host)
        serve(args.host, port, config, log_level="warning" if args.quiet else "info")
    except (ValueError, FaultSpecError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def add_sandbox_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sandbox`` subcommand to a CLI's subparsers."""
    parser = commands.add_parser(
        "sandbox",
        help="serve an offline Stability API on loopback (no credits spent)",
        description="Serve an offline emulator of the Stability API on loopback until "
        "interrupted. Point the connector (or any client) at the printed base URL.",
    )
    add_sandbox_arguments(parser)
    parser.set_defaults(handler=run_sandbox_command)
