"""The README's LlamaIndex embedding example runs offline, as written (against the simulator)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    text = README.read_text()
    start = text.index("**An embedding model is needed for indexes.**")
    return re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)


def test_the_readme_index_example_runs_offline(sim_env, capsys):
    from llama_index.core import Settings

    saved = Settings._llm, Settings._embed_model
    try:
        exec(compile(_example(), "README.md", "exec"), {})
    finally:
        Settings._llm, Settings._embed_model = saved
    assert capsys.readouterr().out.strip()  # an answer, from the simulator
    assert sim_env.chat_requests()[-1].model == "qwen-max"
