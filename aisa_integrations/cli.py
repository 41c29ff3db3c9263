"""The ``aisa`` command: a tour (``aisa demo``) and the local simulator (``aisa simulate``).

Errors print one line that says what to do and exit non-zero; the key never appears in output.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._version import __version__


def _demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return run_demo(model=args.model, stream_model=args.stream_model)


def _simulate(args: argparse.Namespace) -> int:
    from .testing.__main__ import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aisa", description="The AIsa LLM gateway from the command line.")
    parser.add_argument("--version", action="version", version=f"aisa-integrations {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="a short tour; offline against the local simulator unless AISA_API_KEY is set")
    demo.add_argument("--model", default="gpt-4.1")
    demo.add_argument("--stream-model", default="claude-3-sonnet")
    demo.set_defaults(func=_demo)

    from .testing.__main__ import build_parser as simulator_parser

    simulate = sub.add_parser("simulate", help="run the local AIsa simulator on 127.0.0.1")
    simulator_parser(simulate)
    simulate.set_defaults(func=_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .core.errors import AIsaError

    try:
        return int(args.func(args) or 0)
    except AIsaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
