"""Train the shipped task classifier from ``train.jsonl`` and write it into the package.

    pip install -e ".[train]"
    python training/routing/train.py            # writes aisa_integrations/data/task_model.bin
    aisa route --eval training/routing/heldout.jsonl   # the held-out figures in the README

Every choice (features, C, the confidence threshold) is made on ``train.jsonl`` alone, the
threshold by cross-validation inside it. ``heldout.jsonl`` is never read here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aisa_integrations.core.classifier import TaskClassifier, signal
from aisa_integrations.core.training import evaluate, read_examples, train_classifier

HERE = Path(__file__).resolve().parent
SIGNAL_TASKS = ("vision", "chinese")
PACKAGE_MODEL = HERE.parents[1] / "aisa_integrations" / "data" / "task_model.bin"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, default=HERE / "train.jsonl")
    parser.add_argument("--out", type=Path, default=PACKAGE_MODEL)
    parser.add_argument("--c", type=float, default=10.0, help="inverse regularisation strength")
    parser.add_argument("--bits", type=int, default=17, help="log2 of the hash buckets")
    args = parser.parse_args()
    if args.train.name == "heldout.jsonl":
        parser.error("heldout.jsonl is frozen for evaluation; it never trains or tunes the model")

    examples = read_examples(args.train)
    # vision and chinese are the signals' to decide (an image, mostly Chinese text); the few such
    # prompts the signals miss would be classes of one or two examples, so the model does not learn them.
    signal_only = [e for e in examples if e.task in SIGNAL_TASKS and signal(e.text, images=e.images) is None]
    if signal_only:
        print(f"left out of the model (signal tasks the signals miss): {[(e.task, e.text[:40]) for e in signal_only]}")
    model = train_classifier([e for e in examples if e.task not in SIGNAL_TASKS], c=args.c, bits=args.bits)
    model.metadata["trained_on"] = args.train.name
    model.save(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB), threshold {model.threshold}")
    print("cross-validation on the training set:", json.dumps(model.metadata.get("cross_validation")))
    print("\nIN-SAMPLE (the prompts it was trained on; not a measure of generalisation):")
    print(evaluate(TaskClassifier(model), examples).format())


if __name__ == "__main__":
    main()
