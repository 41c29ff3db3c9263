"""The ``aisa`` command: chat, vision, models, compare, route, simulate and the demo tour.

Every command has ``--json``. Errors print one line saying what to do and exit non-zero, with a
code per class (see ``EXIT_CODES``); the key never appears in output.
"""

from __future__ import annotations

import argparse
import base64
import json
import mimetypes
import os
import sys
from collections.abc import Sequence
from typing import Any

from ._version import __version__

#: Exit status per error class (argparse itself uses 2 for usage errors).
EXIT_CODES = {
    "ConfigurationError": 3,  # no AISA_API_KEY, bad base URL
    "AuthenticationError": 4,
    "InsufficientCreditsError": 5,
    "ModelNotFoundError": 6,
    "RateLimitError": 7,
    "InvalidRequestError": 8,  # bad input caught before sending...
    "BadRequestError": 8,  # ...or refused by the gateway (400, content policy, context length)
    "PermissionDeniedError": 8,
    "AIsaAPIError": 9,  # server, connection, timeout, stream failures
}


def _exit_code(exc: BaseException) -> int:
    for cls in type(exc).__mro__:
        if cls.__name__ in EXIT_CODES:
            return EXIT_CODES[cls.__name__]
    return 1


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(out)


def _config(args: argparse.Namespace | None = None) -> Any:
    from .core.config import ClientConfig

    timeout = getattr(args, "timeout", None)
    return ClientConfig.resolve(timeout=timeout) if timeout is not None else ClientConfig.resolve()


def _policy() -> dict[str, Any]:
    """The CLI's retry layer: the core's policy for one model (429s wait out their Retry-After, a 5xx is
    retried once), saying on stderr why it waits. Timeouts come from --timeout."""
    from .core.fallback import FallbackPolicy

    def say(model: str, error: BaseException, seconds: float) -> None:
        status = getattr(error, "status_code", None)
        asked = getattr(error, "retry_after", None)
        why = f"{model} answered HTTP {status}" if status else f"{model} failed ({type(error).__name__})"
        told = f" (Retry-After: {asked:g} s)" if asked is not None else ""
        print(f"aisa: {why}{told}; waiting {seconds:.1f} s before retrying", file=sys.stderr)

    policy = FallbackPolicy(first_token_timeout=None, stall_timeout=None, circuit_breaker=False)
    return {"policy": policy, "on_retry": say}


# -- chat and vision ---------------------------------------------------------------------------


def _api(args: argparse.Namespace) -> str:
    """The wire format: chat completions, or Gemini's native generateContent (--api gemini-native)."""
    return getattr(args, "api", None) or "chat"


def _run_chat(args: argparse.Namespace, messages: list[dict[str, Any]]) -> int:
    from .core.chat import chat, stream_chat
    from .core.usage import parse_usage

    config = _config(args)
    params: dict[str, Any] = {
        "model": args.model,
        "messages": messages,
        "temperature": args.temperature,
        "max_tokens": args.max_tokens,
    }
    if args.stream:
        parts: list[str] = []
        usage = None
        finish = None
        served = args.model
        try:
            for chunk in stream_chat(config, params, api=_api(args), **_policy()):
                served = chunk.get("model") or served
                for choice in chunk.get("choices") or ():
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        parts.append(text)
                        if not args.json:
                            sys.stdout.write(text)
                            sys.stdout.flush()
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
                if chunk.get("usage") is not None:
                    usage = parse_usage(chunk["usage"])
        except Exception:
            if parts and not args.json:
                print()  # end the partial line; the error follows on its own
            raise
        content, request_id = "".join(parts), None
        if not args.json:
            print()
    else:
        completion = chat(config, params, api=_api(args), **_policy())
        choice = completion["choices"][0]
        content, finish, served = (
            choice["message"].get("content") or "",
            choice.get("finish_reason"),
            completion["model"],
        )
        usage = parse_usage(completion.get("usage"))
        request_id = completion.get("_request_id")
        if not args.json:
            print(content)
    if args.json:
        _print_json(
            {
                "model": served,
                "content": content,
                "finish_reason": finish,
                "streamed": bool(args.stream),
                "usage": usage.to_dict() if usage else None,
                "request_id": request_id,
            }
        )
    elif usage is not None:
        cost = f", ${usage.cost:.6f}" if usage.cost is not None else ""
        print(f"[{served}: {usage.total_tokens} tokens{cost}]", file=sys.stderr)
    return 0


def _chat(args: argparse.Namespace) -> int:
    from .core.errors import InvalidRequestError

    if args.messages:
        try:
            messages = json.loads(args.messages)
        except json.JSONDecodeError as exc:
            raise InvalidRequestError(f"--messages is not valid JSON: {exc}") from None
        if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m for m in messages):
            raise InvalidRequestError('--messages must be a JSON list of {"role": ..., "content": ...} objects.')
    elif args.message is not None:
        messages = [{"role": "user", "content": args.message}]
    else:
        raise InvalidRequestError("Give --message TEXT or --messages JSON.")
    if args.system:
        messages = [{"role": "system", "content": args.system}, *messages]
    return _run_chat(args, messages)


def _image_url(image: str) -> str:
    from .core.errors import InvalidRequestError

    if image.startswith(("http://", "https://", "data:image/")):
        return image
    if not os.path.isfile(image):
        raise InvalidRequestError(f"--image {image!r} is neither an http(s) URL nor a readable file.")
    mimetype = mimetypes.guess_type(image)[0] or "image/png"
    if not mimetype.startswith("image/"):
        raise InvalidRequestError(f"--image {image!r} does not look like an image ({mimetype}).")
    with open(image, "rb") as handle:
        return f"data:{mimetype};base64,{base64.b64encode(handle.read()).decode()}"


def _vision(args: argparse.Namespace) -> int:
    content = [
        {"type": "text", "text": args.prompt},
        {"type": "image_url", "image_url": {"url": _image_url(args.image)}},
    ]
    args.temperature = args.max_tokens = None
    args.stream = False
    return _run_chat(args, [{"role": "user", "content": content}])


# -- models, compare, route ----------------------------------------------------------------------


def _price(info: Any) -> str:
    if info.input_per_1k is None or info.output_per_1k is None:
        return "?"
    return f"${info.input_per_1k * 1000:,.2f} / ${info.output_per_1k * 1000:,.2f}"


def _flag(value: bool | None) -> str:
    return {True: "yes", False: "no", None: "?"}[value]


def _models(args: argparse.Namespace) -> int:
    from .core.catalog import default_catalog
    from .core.config import API_KEY_ENV
    from .core.models import list_models

    if os.environ.get(API_KEY_ENV):
        infos = list_models(_config(args), family=args.family)
        source = "the gateway's list, with the built-in catalog's details"
    else:
        infos = sorted(
            (m for m in default_catalog() if not args.family or m.family == args.family), key=lambda m: (m.family, m.id)
        )
        source = f"the built-in catalog (no {API_KEY_ENV}: set it to merge the gateway's own list)"
    if args.json:
        _print_json([i.model_dump() for i in infos])
        return 0
    print(f"Models from {source}:", file=sys.stderr)
    rows = [
        [
            i.id,
            i.family,
            f"{i.context_window:,}" if i.context_window else "?",
            _flag(i.vision),
            _flag(i.tools),
            _price(i),
        ]
        for i in infos
    ]
    print(_table(rows, ["id", "family", "context", "vision", "tools", "USD per 1M tokens in / out"]))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .core.models import compare_models

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.json:
        print(f"Asking {len(models)} models at once: {', '.join(models)}", file=sys.stderr)

    def progress(result: Any) -> None:
        if not args.json:
            mark = "done" if result.ok else "failed"
            print(f"  {mark}: {result.model} ({result.latency_s:.2f} s)", file=sys.stderr)

    results = compare_models(models, args.message, system=args.system, config=_config(args), on_done=progress)
    if args.json:
        _print_json({m: r.to_dict() for m, r in results.items()})
        return 0 if any(r.ok for r in results.values()) else 1
    rows = []
    for r in results.values():
        if r.ok:
            rows.append(
                [
                    r.model,
                    f"{r.latency_s:.2f} s",
                    f"{r.ttft_s:.2f} s" if r.ttft_s is not None else "-",
                    str(r.total_tokens or "-"),
                    f"${r.cost:.6f}" if r.cost is not None else "-",
                    (r.response or "").replace("\n", " ")[:60],
                ]
            )
        else:
            rows.append([r.model, f"{r.latency_s:.2f} s", "-", "-", "-", f"ERROR {r.error_type}"])
    print(_table(rows, ["model", "latency", "first token", "tokens", "cost", "reply"]))
    return 0 if any(r.ok for r in results.values()) else 1


def _route(args: argparse.Namespace) -> int:
    if args.eval:
        return _route_eval(args)
    if args.train:
        return _route_train(args)
    from .core.capabilities import Requirements, estimate_tokens
    from .core.classifier import TaskClassifier
    from .core.routing import TaskRouter

    routes = {}
    for item in args.route or ():
        task, sep, model = item.partition("=")
        if not sep or not task or not model:
            print(f"error: --route {item!r} is not TASK=MODEL (e.g. --route legal=claude-3-opus).", file=sys.stderr)
            return 2
        routes[task] = model
    classifier = TaskClassifier(args.classifier)
    router = TaskRouter(routes, classifier=classifier if args.classifier else None, sticky=not args.no_sticky)
    messages = [{"role": "user", "content": args.message}]
    images = len(args.image or [])
    needs = Requirements(vision=bool(images), tools=args.tools, prompt_tokens=estimate_tokens(messages))
    decision = router.decide(args.message, needs=needs, images=images, task=args.task, earlier=args.earlier or ())
    explanation = classifier.explain(args.message, images=images) if args.explain else None
    if args.json:
        out = decision.to_dict()
        if explanation is not None:
            out["explanation"] = explanation.to_dict()
        _print_json(out)
        return 0
    inherited = " (inherited from the conversation)" if decision.inherited else ""
    print(f"task:       {decision.task}{inherited} (confidence {decision.confidence:.2f})")
    print(f"model:      {decision.model}")
    print(f"why:        {decision.reason}")
    print(f"candidates: {', '.join(decision.candidates)}")
    for skip in decision.skipped:
        print(f"skipped:    {skip['model']}: {skip['why']}")
    if explanation is not None:
        _print_explanation(explanation, last_turn_only=bool(args.earlier))
    return 0


def _describe_feature(name: str) -> str:
    kind, _, value = name.partition(":")
    return {
        "w": f"word {value!r}",
        "b": f"words {value!r}",
        "len": f"length bucket {value}",
        "shape": {"lines": "several lines", "question": "ends with '?'"}.get(value, value),
    }.get(kind, name)


def _print_explanation(explanation: Any, *, last_turn_only: bool) -> None:
    print()
    print("this turn alone:" if last_turn_only else "evidence:")
    print(
        f"  signal:        {explanation.signal or 'none (no image, not mostly Chinese, no code fence or stack trace)'}"
    )
    if explanation.probabilities:
        ranked = sorted(explanation.probabilities.items(), key=lambda kv: kv[1], reverse=True)
        print("  probabilities: " + ", ".join(f"{task} {p:.2f}" for task, p in ranked))
        print(f"  threshold:     {explanation.threshold:.2f} (below it a prompt goes to default)")
        if explanation.features:
            rival = ranked[1][0] if len(ranked) > 1 else ranked[0][0]
            print(f"  top features (towards {ranked[0][0]} over {rival}):")
            for feature in explanation.features:
                print(f"    {feature.weight:+.3f}  {_describe_feature(feature.name)}")


def _route_eval(args: argparse.Namespace) -> int:
    from .core.classifier import TaskClassifier
    from .core.training import evaluate, read_examples

    try:
        examples = [e for path in args.eval for e in read_examples(path)]
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = evaluate(TaskClassifier(args.classifier), examples)
    if args.json:
        _print_json(report.to_dict())
        return 0
    print(report.format())
    for example, predicted in report.misses[: args.misses]:
        print(f"  {example.task} -> {predicted}: {' '.join(example.text.split())[:100]}")
    return 0


def _route_train(args: argparse.Namespace) -> int:
    from .core.classifier import TaskClassifier
    from .core.training import evaluate, read_examples, train_classifier

    if not args.out:
        print("error: --train needs --out MODEL.bin (where to write the classifier).", file=sys.stderr)
        return 2
    try:
        examples = [e for path in args.train for e in read_examples(path)]
        model = train_classifier(examples, threshold=args.threshold if args.threshold is not None else "auto")
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    model.save(args.out)
    report = evaluate(TaskClassifier(model), examples)
    summary = {
        "out": str(args.out),
        "classes": list(model.classes),
        "threshold": model.threshold,
        "cross_validation": model.metadata.get("cross_validation"),
        "in_sample_accuracy": round(report.accuracy, 4),
    }
    if args.json:
        _print_json(summary)
        return 0
    print(f"wrote {args.out}: tasks {', '.join(model.classes)}; threshold {model.threshold:.2f}")
    if summary["cross_validation"]:
        print(f"cross-validated on these prompts: accuracy {summary['cross_validation']['accuracy']:.3f}")
    print(f"in-sample accuracy (the prompts it was trained on): {report.accuracy:.3f}")
    print(f"use it: TaskRouter(routes, classifier={str(args.out)!r}) or AIsaChatModel(routes=..., classifier=...)")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return run_demo(model=args.model, stream_model=args.stream_model, as_json=args.json)


def _status(args: argparse.Namespace) -> int:
    import logging

    from .core.state import current_store, store_from
    from .core.status import format_status, status

    # This process's own fallback state is not what an operator asks about: an unreachable store is
    # an error of the command (exit 9), said once, not the library's warning plus an empty report.
    logging.getLogger("aisa_integrations.state").setLevel(logging.ERROR)
    store = store_from(args.store) if args.store else current_store()
    report = status(store)
    if not report["reachable"]:
        where = store.description.split(" (")[0].removeprefix("redis ")
        message = f"the Redis state store at {where} cannot be reached; nothing to report."
        if args.json:
            _print_json({"error": {"type": "StoreUnavailable", "message": message, "exit_code": 9}})
        else:
            print(f"error: {message}", file=sys.stderr)
        return 9
    if args.json:
        _print_json(report)
    else:
        print(format_status(report))
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from .testing.__main__ import run

    if not 0 <= args.port <= 65535:
        print(f"error: --port {args.port} is not a port (0-65535; 0 picks a free one).", file=sys.stderr)
        return 2
    try:
        return run(args)
    except OSError as exc:
        reason = exc.strerror or exc
        print(f"error: cannot listen on {args.host}:{args.port} ({reason}); try --port 0.", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aisa",
        description="The AIsa LLM gateway from the command line. Configure with AISA_API_KEY (and AISA_BASE_URL).",
    )
    parser.add_argument("--version", action="version", version=f"aisa-integrations {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--json", action="store_true", help="print machine-readable JSON")
        return p

    def calls(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--timeout", type=float, help="seconds per request (default 120)")
        return p

    chat = calls(common(sub.add_parser("chat", help="one chat completion")))
    chat.add_argument("--model", default="gpt-4.1")
    chat.add_argument("--system")
    chat.add_argument("--message")
    chat.add_argument("--messages", help='a JSON list, e.g. [{"role":"user","content":"Hi"}]')
    chat.add_argument("--stream", action="store_true")
    chat.add_argument("--temperature", type=float)
    chat.add_argument("--max-tokens", type=int)
    chat.add_argument(
        "--api",
        choices=["chat", "gemini-native"],
        default="chat",
        help="wire format: chat completions (default) or Gemini's native :generateContent (Gemini models)",
    )
    chat.set_defaults(func=_chat)

    vision = calls(common(sub.add_parser("vision", help="ask about an image (URL or local file)")))
    vision.add_argument("--model", default="gpt-4o")
    vision.add_argument("--image", required=True)
    vision.add_argument("--prompt", default="Describe this image.")
    vision.set_defaults(func=_vision)

    models = calls(common(sub.add_parser("models", help="the models, with catalog details (no key: the catalog)")))
    models.add_argument("--family", choices=["gpt", "claude", "gemini", "qwen", "deepseek", "grok", "unknown"])
    models.set_defaults(func=_models)

    compare = calls(common(sub.add_parser("compare", help="the same prompt on several models at once")))
    compare.add_argument("--models", required=True, help="comma-separated ids, e.g. gpt-4.1,claude-3-sonnet")
    compare.add_argument("--message", required=True)
    compare.add_argument("--system")
    compare.set_defaults(func=_compare)

    route = common(
        sub.add_parser(
            "route",
            help="show the task, the chosen model and why, without sending; measure or train the classifier",
        )
    )
    what = route.add_mutually_exclusive_group(required=True)
    what.add_argument("--message", help="the prompt to route")
    what.add_argument(
        "--eval", nargs="+", metavar="FILE.jsonl", help="accuracy and confusion matrix on labelled prompts"
    )
    what.add_argument("--train", nargs="+", metavar="FILE.jsonl", help="train a classifier (needs the train extra)")
    route.add_argument("--image", action="append", help="the request carries this image (repeatable)")
    route.add_argument("--tools", action="store_true", help="the request binds tools")
    route.add_argument("--task", help="force a task instead of classifying")
    route.add_argument("--earlier", action="append", help="an earlier user turn of the conversation (repeatable)")
    route.add_argument("--no-sticky", action="store_true", help="route the last turn on its own words only")
    route.add_argument("--explain", action="store_true", help="the signals and top-weighted features behind it")
    route.add_argument("--classifier", metavar="MODEL.bin", help="a classifier trained with --train")
    route.add_argument("--route", action="append", metavar="TASK=MODEL", help="route a task to a model (repeatable)")
    route.add_argument("--misses", type=int, default=0, metavar="N", help="with --eval: list N misclassified prompts")
    route.add_argument("--out", metavar="MODEL.bin", help="with --train: where to write the classifier")
    route.add_argument("--threshold", type=float, help="with --train: the confidence threshold (default: chosen by CV)")
    route.set_defaults(func=_route)

    state = common(
        sub.add_parser(
            "status", help="circuit breakers, spend against budgets and rate-limit levels in the state store"
        )
    )
    state.add_argument("--store", metavar="URL", help="redis://host:6379/0 (default: AISA_STATE_URL, else memory)")
    state.set_defaults(func=_status)

    from .testing.__main__ import build_parser as simulator_parser

    simulate = sub.add_parser("simulate", help="run the local AIsa simulator on 127.0.0.1")
    simulator_parser(simulate)
    simulate.set_defaults(func=_simulate)

    demo = common(sub.add_parser("demo", help="the tour; offline against the simulator unless AISA_API_KEY is set"))
    demo.add_argument("--model", default="gpt-4.1")
    demo.add_argument("--stream-model", default="claude-3-sonnet")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .core.errors import AIsaError, redact

    try:
        return int(args.func(args) or 0)
    except AIsaError as exc:
        message = " ".join(redact(str(exc), os.environ.get("AISA_API_KEY")).split())
        code = _exit_code(exc)
        if getattr(args, "json", False):
            _print_json(
                {
                    "error": {
                        "type": type(exc).__name__,
                        "message": message,
                        "exit_code": code,
                        "status": getattr(exc, "status_code", None),
                        "code": getattr(exc, "code", None),
                    }
                }
            )
        else:
            print(f"error: {message}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
