"""``python -m aisa_integrations.testing``: run the AIsa simulator in the foreground."""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from .simulator import SIMULATOR_KEY, AIsaSimulator


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="python -m aisa_integrations.testing")
    parser.description = "Run the local AIsa simulator (scripted replies, fault injection) on 127.0.0.1."
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (0: any free port)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to bind (default 127.0.0.1; anything else exposes it beyond this machine, and warns)",
    )
    parser.add_argument("--api-key", default=SIMULATOR_KEY, help="the key it accepts; 'any' accepts every key")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every chat request")
    parser.add_argument("--credits", type=float, default=100.0, help="starting balance in USD")
    parser.add_argument("--json", action="store_true", help="print the base URL and key as one JSON line")
    return parser


def run(args: argparse.Namespace) -> int:
    remote = args.host not in ("127.0.0.1", "localhost", "::1")
    if remote:
        print(
            f"warning: the simulator will listen on {args.host}, reachable beyond this machine; its request log "
            "holds the prompts it receives.",
            file=sys.stderr,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # said above, in the command's own words
        sim = AIsaSimulator(host=args.host, allow_remote=remote, **_settings(args)).start()
    return _serve(args, sim)


def _settings(args: argparse.Namespace) -> dict:
    return {
        "port": args.port,
        "api_key": None if args.api_key == "any" else args.api_key,
        "latency": args.latency,
        "credits": args.credits,
    }


def _serve(args: argparse.Namespace, sim: AIsaSimulator) -> int:
    if getattr(args, "json", False):
        print(json.dumps({"base_url": sim.base_url, "api_key": sim.api_key or "anything"}), flush=True)
    else:
        print(f"AIsa simulator listening on {sim.base_url} (scripted replies, not a model)", flush=True)
        print(f"  export AISA_BASE_URL={sim.base_url}", flush=True)
        print(f"  export AISA_API_KEY={sim.api_key or 'anything'}", flush=True)
        print(
            "  faults: POST /_simulator/faults {model, status, retry_after, delay, drop_after, ...} "
            "(Content-Type: application/json, Authorization: Bearer <the key>)",
            flush=True,
        )
    sim.serve_forever()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
