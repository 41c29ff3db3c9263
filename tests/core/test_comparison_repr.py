"""``compare_models`` results: still a dict, and an HTML table in Jupyter (escaped)."""

from __future__ import annotations

from aisa_integrations.core import ClientConfig
from aisa_integrations.core.models import Comparison, ComparisonResult, compare_models
from aisa_integrations.testing import Fault


def _comparison() -> Comparison:
    ok = ComparisonResult(
        model="gpt-4.1", response="4", latency_s=0.25, ttft_s=0.1, total_tokens=12, cost=0.000123, prompt_tokens=5
    )
    unpriced = ComparisonResult(model="local<b>", response="4", latency_s=1.5, ttft_s=None, total_tokens=7)
    failed = ComparisonResult(
        model="claude-3-sonnet",
        latency_s=0.01,
        error='Upstream said <script>alert("x")</script> & left',
        error_type="ServerError",
    )
    return Comparison({r.model: r for r in (ok, unpriced, failed)})


def test_repr_html_is_an_escaped_table():
    page = _comparison()._repr_html_()
    assert page.startswith("<table>") and page.endswith("</table>")
    for header in ("model", "latency", "first token", "tokens", "cost", "error"):
        assert f"<th>{header}</th>" in page
    assert "<td>gpt-4.1</td><td>0.25 s</td><td>0.10 s</td><td>12</td><td>$0.000123</td><td></td>" in page
    assert "<td>local&lt;b&gt;</td>" in page and "local<b>" not in page
    assert "<td>not reported</td>" in page  # a gateway that sends no cost: not a zero cost
    assert "<script>" not in page
    assert "ServerError: Upstream said &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; left" in page
    assert page.count("<tr>") == 4


def test_still_a_plain_dict():
    results = _comparison()
    assert isinstance(results, dict) and len(results) == 3
    assert list(results) == ["gpt-4.1", "local<b>", "claude-3-sonnet"]
    assert results["gpt-4.1"].cost == 0.000123 and results["claude-3-sonnet"].ok is False
    assert repr(results) == repr(dict(results)) and str(results) == str(dict(results))
    assert results == dict(results)


def test_compare_models_returns_a_comparison(sim):
    sim.inject("claude-3-sonnet", Fault(status=503))
    config = ClientConfig.resolve(api_key=sim.api_key, base_url=sim.base_url, max_retries=0)
    results = compare_models(["gpt-4.1", "claude-3-sonnet"], "hi", config=config)
    assert isinstance(results, Comparison) and list(results) == ["gpt-4.1", "claude-3-sonnet"]
    page = results._repr_html_()
    assert "<td>gpt-4.1</td>" in page and "ServerError" in page


def test_compare_chat_models_returns_a_comparison_too(sim):
    from aisa_integrations import AIsaChatModel, compare_chat_models

    models = [AIsaChatModel(model=m, api_key=sim.api_key, base_url=sim.base_url) for m in ("gpt-4.1", "qwen-max")]
    results = compare_chat_models(models, "Hello")
    assert isinstance(results, Comparison) and "<td>qwen-max</td>" in results._repr_html_()
