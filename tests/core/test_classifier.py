"""The task classifier: signals, the shipped lexical model, its held-out accuracy, training and files."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from aisa_integrations.core.classifier import TaskClassifier, classify_task, signal
from aisa_integrations.core.errors import ConfigurationError, InvalidRequestError
from aisa_integrations.core.lexical import LexicalModel, bucket, feature_names
from aisa_integrations.core.routing import Requirements, TaskRouter
from aisa_integrations.core.training import evaluate, read_examples, train_classifier

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "training" / "routing"
HELDOUT_SHA256 = "f8e7606a63871e35e2c3730fa4971fd53f4e91e3d6ef7580bb6bea1a50782135"


# -- the held-out set and the published figures ------------------------------------------------


def test_the_heldout_set_is_frozen():
    assert hashlib.sha256((CORPUS / "heldout.jsonl").read_bytes()).hexdigest() == HELDOUT_SHA256


def test_no_heldout_prompt_is_in_the_training_set():
    def norm(text):
        return " ".join(text.lower().split())

    train = {norm(e.text) for e in read_examples(CORPUS / "train.jsonl")}
    assert not [e.text for e in read_examples(CORPUS / "heldout.jsonl") if norm(e.text) in train]


def test_heldout_accuracy_meets_the_bar():
    """The README's figures (reproduce: ``aisa route --eval training/routing/heldout.jsonl``)."""
    report = evaluate(classify_task, read_examples(CORPUS / "heldout.jsonl"))
    print("\n" + report.format())
    assert report.total == 665
    assert report.accuracy >= 0.93
    assert min(report.per_class.values()) >= 0.88, report.per_class


# -- signals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "images", "task"),
    [
        ("write a python function", 2, "vision"),  # an image decides, whatever the text
        ("请介绍一下长城的历史", 0, "chinese"),
        ("请解释一下 Kubernetes 的 Pod 是什么", 0, "chinese"),  # English terms inside Chinese
        ("```python\nprint('x')\n```\nwhy no output", 0, "code"),  # a fence
        ("Traceback (most recent call last):\n  File 'a.py'\nValueError: bad", 0, "code"),  # a trace
        ('Exception in thread "main" java.lang.NullPointerException\n    at Foo.bar(Foo.java:12)', 0, "code"),
    ],
)
def test_signals_decide_without_the_model(text, images, task):
    decided = signal(text, images=images)
    assert decided is not None and decided.task == task
    assert classify_task(text, images=images) == decided


@pytest.mark.parametrize(
    "text",
    [
        "What does the character 水 mean?",  # English with one hanzi
        "きょうは てんきが いいですね。どこか に でかけませんか。",  # Japanese, mostly kana
        "write a poem that rhymes segmentation fault with default",  # names an error, is no trace
    ],
)
def test_no_signal_for_lookalikes(text):
    assert signal(text) is None


# -- the model -----------------------------------------------------------------------------------


def test_the_cached_scorer_equals_the_reference_dot_product():
    model = LexicalModel.builtin()
    for text in ["Fix my SQL: SELECT * FROM t WHERE", "hi", "", "a b a b a b", "x" * 5000 + " why?"]:
        rows = [model._row(name) for name in feature_names(text, model.ngrams)]
        factor = model._scale / math.sqrt(len(rows))
        reference = [b + factor * sum(r[k] for r in rows) for k, b in enumerate(model._bias)]
        assert model.scores(text) == pytest.approx(reference, abs=1e-9)
        assert model.scores(text) == model.scores(text)  # the second pass is served by the word cache


def test_hashing_is_stable():
    # crc32 of the UTF-8 name: the same buckets in every process, on every platform
    assert bucket("w:docker", 18) == 254962 and bucket("w:docker", 17) == 254962 & (2**17 - 1)


def test_a_low_confidence_prompt_goes_to_default():
    model = LexicalModel.builtin()
    assert 0 < model.threshold < 1 and model.metadata["cross_validation"]["folds"] == 5
    unclear = "ok so about the thing from before"
    probability = model.predict(unclear).probability
    result = TaskClassifier(threshold=min(0.99, probability + 0.01))(unclear)
    assert result.task == "default" and result.reason.startswith("unclear: ")
    assert result.confidence == pytest.approx(probability)
    confident = TaskClassifier(threshold=0.0)(unclear)
    assert confident.task == model.predict(unclear).label and confident.reason.startswith("the task model")


def test_explain_names_the_signal_or_the_features():
    explained = TaskClassifier().explain("my docker build fails with exit code 137")
    assert explained.classification.task == "code" and explained.signal is None
    assert {f.name for f in explained.features[:3]} & {"w:docker", "w:code", "w:build"}
    assert sum(explained.probabilities.values()) == pytest.approx(1.0)
    traced = TaskClassifier().explain("Traceback (most recent call last):\n boom")
    assert traced.signal and "stack trace" in traced.signal and traced.features == []


def test_model_files_round_trip_and_bad_files_are_named(tmp_path):
    model = LexicalModel.builtin()
    path = model.save(tmp_path / "m.bin")
    again = LexicalModel.load(path)
    assert again.to_bytes() == model.to_bytes() and again.classes == model.classes
    (tmp_path / "bad.bin").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="Not an AIsa lexical model file"):
        LexicalModel.load(tmp_path / "bad.bin")


def test_the_request_path_imports_no_numpy_or_sklearn():
    code = (
        "import sys, aisa_integrations\n"
        "from aisa_integrations.core.classifier import classify_task\n"
        "classify_task('hello there, how do I center a div')\n"
        "print(sorted(m for m in ('numpy', 'sklearn', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_shipped_model_loads_from_an_installed_wheel(tmp_path):
    """Built as a wheel, unpacked away from the checkout: the model file travels as package data."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path, ROOT],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("aisa_integrations-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert "aisa_integrations/data/task_model.bin" in archive.namelist()
        archive.extractall(tmp_path / "site")
    code = (
        "import aisa_integrations, json\n"
        "from aisa_integrations.core.classifier import classify_task\n"
        "print(json.dumps([aisa_integrations.__file__, classify_task('write a haiku about rain').task]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
    )
    location, task = json.loads(out.stdout)
    assert location.startswith(str(tmp_path / "site")) and task == "creative"


# -- users' own classifiers ----------------------------------------------------------------------

LEGAL = [
    "is a verbal agreement binding in california",
    "can my landlord keep my deposit for normal wear",
    "what counts as wrongful termination",
    "do i need a lawyer for small claims court",
    "how does a non compete clause hold up in court",
    "can my employer read my work email legally",
    "what happens if i break my lease early",
    "is it legal to record a phone call without consent",
]
MEDICAL = [
    "is 38.5 a fever for a toddler",
    "can i take ibuprofen with amoxicillin",
    "what are early signs of type 2 diabetes",
    "how long does a sprained ankle take to heal",
    "should i worry about a mole that changed color",
    "is it safe to run with shin splints",
    "what dose of melatonin is safe for adults",
    "why does my knee click when i squat",
]
OTHER = [
    "recommend a podcast about history",
    "what should i cook tonight with chickpeas",
    "plan a weekend in lisbon",
    "tips for learning the guitar as an adult",
    "how do i keep basil alive indoors",
    "good books like the martian",
    "how to clean a cast iron pan",
    "ideas for a rainy sunday with kids",
]
USER_EXAMPLES = [(t, "legal") for t in LEGAL] + [(t, "medical") for t in MEDICAL] + [(t, "default") for t in OTHER]


def test_a_user_trained_classifier_loads_and_routes(tmp_path):
    model = train_classifier(USER_EXAMPLES)
    assert model.classes == ("default", "legal", "medical") and 0 <= model.threshold < 1
    path = model.save(tmp_path / "mine.bin")
    router = TaskRouter({"legal": "claude-3-opus", "medical": "gpt-4.1"}, classifier=str(path))
    decision = router.decide("can my landlord evict me without notice", needs=Requirements())
    assert (decision.task, decision.model) == ("legal", "claude-3-opus")
    assert router.decide("is it safe to take ibuprofen for a fever", needs=Requirements()).task == "medical"
    assert router.decide("photo question", needs=Requirements(vision=True), images=1).task == "vision"
    with pytest.raises(InvalidRequestError, match=r"unknown tasks \['tax'\].*aisa route --train"):
        TaskRouter({"tax": "gpt-4.1"}, classifier=model)


def test_training_refuses_what_it_cannot_learn_from():
    with pytest.raises(ValueError, match="at least two tasks"):
        train_classifier([("a", "x"), ("b", "x")])
    with pytest.raises(ValueError, match="at least 5 prompts per task"):
        train_classifier([("a", "x"), ("b", "y")])
    with pytest.raises(ValueError, match="'text' and 'task'"):
        train_classifier([{"text": "a"}])


def test_training_without_the_extra_names_it(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ConfigurationError, match=r'pip install "aisa-integrations\[train\]"'):
        train_classifier(USER_EXAMPLES)


def test_evaluation_report(tmp_path):
    report = evaluate(
        classify_task, [("hi!", "fast"), ("def f(:\n  pass  # why a syntax error", "code"), ("hi", "code")]
    )
    assert (report.total, report.correct) == (3, 2)
    assert report.confusion == {"fast": {"fast": 1}, "code": {"code": 1, "fast": 1}}
    assert report.per_class == {"fast": 1.0, "code": 0.5}
    text = report.format()
    assert "accuracy 0.667 on 3 prompts" in text and "code (2)" in text
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x", "task": "code"}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: not JSON"):
        read_examples(bad)
