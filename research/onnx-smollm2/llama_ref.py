"""Reference side of the comparisons: llama.cpp through llama-cpp-python.

Run with the interpreter that has llama-cpp-python (here /work/main/.venv/bin/python); it reads
one JSON request on stdin and writes one JSON answer on stdout, so the prototype's venv never
needs llama.cpp.  Requests:

    {"op": "tokenize", "model": path, "texts": [...]}
        -> {"ids": [[...], ...]}
    {"op": "greedy", "model": path, "prompts": [[ids...], ...], "n": 40, "threads": 2,
     "n_ctx": 2048, "forced": [[ids...], ...] (optional: teacher forcing -- feed these,
     report the argmax)}
        -> {"out": [[ids...], ...], "top2": [[[id, logit, id2, logit2], ...], ...]}
    {"op": "logits", "model": path, "prompts": [[ids...], ...]}
        -> {"logits": [[...vocab floats], ...]}  (after each prompt, fresh context)
    {"op": "bench", "model": path, "prompt": [ids...], "short": [ids...], "n": 128,
     "threads": 2, "repeat": 1, "n_ctx": 8192}
        -> {"import_s", "load_s", "ttft_s", "prefill_tok_s", "gen_tok_s", "*_cpu_tok_s",
            "peak_rss_mb"}
"""

import json
import resource
import sys
import time

_T0 = time.perf_counter()
import numpy as np  # noqa: E402
from llama_cpp import Llama  # noqa: E402

IMPORT_S = time.perf_counter() - _T0


def _last_logits(llm):
    """Logits of the last evaluated token (llama-cpp-python keeps none unless logits_all)."""
    ptr = llm._ctx.get_logits_ith(-1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).copy()


def tokenize(req):
    llm = Llama(model_path=req["model"], vocab_only=True, verbose=False)
    return {
        "ids": [llm.tokenize(t.encode("utf-8"), add_bos=False, special=True) for t in req["texts"]]
    }


def greedy(req):
    llm = Llama(
        model_path=req["model"],
        n_ctx=req.get("n_ctx", 2048),
        n_threads=req.get("threads", 2),
        logits_all=False,
        verbose=False,
    )
    outs, tops = [], []
    forced_all = req.get("forced")  # optional: feed these tokens instead of the argmax
    for pi, prompt in enumerate(req["prompts"]):
        llm.reset()
        llm.eval(prompt)
        out, top = [], []
        for j in range(req["n"]):
            logits = _last_logits(llm)
            order = np.argsort(-logits)[:2]
            tok = int(order[0])
            top.append([tok, float(logits[order[0]]), int(order[1]), float(logits[order[1]])])
            out.append(tok)
            llm.eval([forced_all[pi][j] if forced_all else tok])
        outs.append(out)
        tops.append(top)
    return {"out": outs, "top2": tops}


def logits(req):
    """Logits after each prompt in req["prompts"] (fresh context each)."""
    llm = Llama(model_path=req["model"], n_ctx=req.get("n_ctx", 2048),
                n_threads=req.get("threads", 2), verbose=False)
    out = []
    for prompt in req["prompts"]:
        llm.reset()
        llm._ctx.kv_cache_clear() if hasattr(llm._ctx, "kv_cache_clear") else None
        llm.eval(prompt)
        out.append(_last_logits(llm).tolist())
    return {"logits": out}


def bench(req):
    res = {"import_s": IMPORT_S, "load_s": [], "ttft_s": [], "prefill_tok_s": [], "gen_tok_s": [],
           "prefill_cpu_tok_s": [], "gen_cpu_tok_s": []}
    prompt, n = req["prompt"], req["n"]
    for _ in range(req.get("repeat", 3)):
        t0 = time.perf_counter()
        llm = Llama(
            model_path=req["model"],
            n_ctx=req.get("n_ctx", 8192),
            n_threads=req.get("threads", 2),
            verbose=False,
        )
        res["load_s"].append(time.perf_counter() - t0)
        # first token of a short prompt, cold (time from interpreter start: _T0 is close)
        llm.eval(req["short"])
        int(np.argmax(_last_logits(llm)))
        res["ttft_s"].append(time.perf_counter() - _T0)
        llm.reset()
        t0, c0 = time.perf_counter(), time.process_time()
        llm.eval(prompt)
        res["prefill_tok_s"].append(len(prompt) / (time.perf_counter() - t0))
        res["prefill_cpu_tok_s"].append(len(prompt) / (time.process_time() - c0))
        t0, c0 = time.perf_counter(), time.process_time()
        # greedy generation of n tokens, one eval per token (same work as the ONNX loop)
        for _ in range(n):
            llm.eval([int(np.argmax(_last_logits(llm)))])
        res["gen_tok_s"].append(n / (time.perf_counter() - t0))
        res["gen_cpu_tok_s"].append(n / (time.process_time() - c0))
        del llm
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return res


if __name__ == "__main__":
    req = json.load(sys.stdin)
    ans = {"tokenize": tokenize, "greedy": greedy, "logits": logits, "bench": bench}[req["op"]](req)
    json.dump(ans, sys.stdout)
