"""Speed and memory of the ONNX Runtime prototype vs llama.cpp, measured alike.

    python bench.py [--rounds 3] [--threads 2] [--gen 128]

Each round runs, in fresh processes one after the other (so both see the same machine
load): the ONNX Runtime worker (this venv) and the llama.cpp worker (REF_PYTHON with
llama-cpp-python).  Each worker reports

    import_s      importing the runtime's Python packages
    load_s        from nothing to ready: ORT = GGUF read + graph build + session create;
                  llama.cpp = Llama(model_path, n_ctx=8192)
    ttft_s        process start -> first token of a short chat prompt ("Hi!"), all cold:
                  interpreter + imports + load + first prefill
    prefill_tok_s a ~200-token chat prompt, one call (wall clock), after that warm-up
    gen_tok_s     128 greedy tokens after it, one forward per token (no early stop)
    *_cpu_tok_s   the same per second of CPU time of the process (user+sys, all threads):
                  less sensitive to other work on the machine; with 1 thread it is close
                  to the wall-clock speed on an idle core
    peak_rss_mb   ru_maxrss of the worker process

and the table gives min and median over the rounds (the machine is shared: min is the
best estimate of the cost, median of what a user sees).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TEXT = (
    "Seamline is a gateway that sits between applications and language-model providers. "
    "It routes each request to a model, keeps a log of prompts and answers, enforces "
    "budgets, retries failed calls, and exposes one OpenAI-compatible API. "
)


def prompt_ids(tok, target: int = 200) -> list[int]:
    """A chat prompt of about ``target`` tokens."""
    body = ""
    while True:
        msgs = [{"role": "user", "content": body + "Summarise the text above in one sentence."}]
        ids = tok.encode(tok.apply_chat_template(msgs))
        if len(ids) >= target:
            return ids
        body += TEXT


T_START = time.perf_counter()


def ort_worker(threads: int, gen: int, kw: dict) -> dict:
    t0 = time.perf_counter()
    import numpy as np

    import runtime
    from compare import model_path

    t1 = time.perf_counter()
    lm = runtime.SmolLM(model_path(), threads=threads, **kw)
    t2 = time.perf_counter()
    # time to first token from process start: a short chat prompt, cold
    short = lm.tok.encode(lm.tok.apply_chat_template([{"role": "user", "content": "Hi!"}]))
    lm.reset()
    int(np.argmax(lm.prefill(short)))
    ttft = time.perf_counter() - T_START
    ids = prompt_ids(lm.tok)
    lm.reset()
    t, c = time.perf_counter(), time.process_time()
    logits = lm.prefill(ids)
    prefill = len(ids) / (time.perf_counter() - t)
    prefill_cpu = len(ids) / (time.process_time() - c)
    t, c = time.perf_counter(), time.process_time()
    for _ in range(gen):
        logits = lm.forward([int(np.argmax(logits))])
    gen_s = gen / (time.perf_counter() - t)
    gen_cpu = gen / (time.process_time() - c)
    return {
        "import_s": t1 - t0, "load_s": t2 - t1, **lm.timings, "ttft_s": ttft,
        "prompt_tokens": len(ids),
        "prefill_tok_s": prefill, "gen_tok_s": gen_s, "prefill_cpu_tok_s": prefill_cpu,
        "gen_cpu_tok_s": gen_cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def llama_worker(threads: int, gen: int) -> dict:
    from compare import REF_PYTHON, model_path
    from gguf_lite import GGUFFile
    from tokenizer import GGUFTokenizer

    tok = GGUFTokenizer(GGUFFile(model_path()).meta)
    ids = prompt_ids(tok)
    short = tok.encode(tok.apply_chat_template([{"role": "user", "content": "Hi!"}]))
    req = {"op": "bench", "model": model_path(), "prompt": ids, "n": gen, "threads": threads,
           "repeat": 1, "n_ctx": 8192, "short": short}
    out = subprocess.run([REF_PYTHON, str(HERE / "llama_ref.py")], input=json.dumps(req),
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout)
    return {"import_s": r["import_s"], "load_s": r["load_s"][0], "ttft_s": r["ttft_s"][0],
            "prefill_tok_s": r["prefill_tok_s"][0], "gen_tok_s": r["gen_tok_s"][0],
            "prefill_cpu_tok_s": r["prefill_cpu_tok_s"][0], "gen_cpu_tok_s": r["gen_cpu_tok_s"][0],
            "peak_rss_mb": r["peak_rss_mb"], "prompt_tokens": len(ids)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--worker", choices=["ort", "llama"])
    ap.add_argument("--ort-kw", default="{}", help="JSON keyword arguments of SmolLM")
    ap.add_argument("--variants", default='{"ort": {}}',
                    help='JSON {label: SmolLM kwargs} of ORT variants to compare')
    ap.add_argument("--no-llama", action="store_true")
    a = ap.parse_args()
    if a.worker == "ort":
        print(json.dumps(ort_worker(a.threads, a.gen, json.loads(a.ort_kw))))
        return
    if a.worker == "llama":
        print(json.dumps(llama_worker(a.threads, a.gen)))
        return

    variants = json.loads(a.variants)
    runs: dict[str, list[dict]] = {k: [] for k in variants}
    if not a.no_llama:
        runs["llama.cpp"] = []
    for r in range(a.rounds):
        for label in runs:
            if label == "llama.cpp":
                cmd = [sys.executable, __file__, "--worker", "llama"]
            else:
                cmd = [sys.executable, __file__, "--worker", "ort",
                       "--ort-kw", json.dumps(variants[label])]
            cmd += ["--threads", str(a.threads), "--gen", str(a.gen)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            res = json.loads(out.stdout.strip().splitlines()[-1])
            runs[label].append(res)
            print(f"round {r} {label}: " + ", ".join(
                f"{k} {v:.3g}" for k, v in res.items()), flush=True)
    keys = ["import_s", "load_s", "ttft_s", "prefill_tok_s", "gen_tok_s", "prefill_cpu_tok_s",
            "gen_cpu_tok_s", "peak_rss_mb"]
    print(f"\n{'':12s}" + "".join(f"{k:>20s}" for k in keys))
    for label, rs in runs.items():
        cells = []
        for k in keys:
            vals = [x[k] for x in rs]
            best = max(vals) if k.endswith("tok_s") else min(vals)
            cells.append(f"{best:8.3g} / {statistics.median(vals):<8.3g}")
        print(f"{label:12s}" + "".join(f"{c:>20s}" for c in cells))
    print("(each cell: best / median over", a.rounds, "rounds; best = max for tok/s, min else)")
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
