"""``python -m stability_connector.sandbox [options]``: the same as
``stability-connector sandbox``, without loading the rest of the command line."""

from __future__ import annotations

import argparse
import sys

from .server import add_sandbox_arguments, run_sandbox_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stability_connector.sandbox",
        description="Serve an offline emulator of the Stability API on loopback.",
    )
    add_sandbox_arguments(parser)
    return run_sandbox_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
