"""Adding up a stream: list-valued extras (images, files) from several chunks are all kept."""

from __future__ import annotations

from aisa_integrations.core.stream import ChunkAccumulator


def _chunk(delta, finish=None):
    return {"id": "c", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_images_from_several_chunks_are_all_kept():
    accumulator = ChunkAccumulator()
    accumulator.add(_chunk({"role": "assistant", "content": "Here", "images": [{"url": "data:image/png;base64,AAAA"}]}))
    accumulator.add(_chunk({"content": " they are", "images": [{"url": "data:image/png;base64,BBBB"}]}, "stop"))
    message = accumulator.completion()["choices"][0]["message"]
    assert message["content"] == "Here they are"
    assert [image["url"][-4:] for image in message["images"]] == ["AAAA", "BBBB"]
