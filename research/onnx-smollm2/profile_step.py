"""Where one generation step's time goes: ONNX Runtime's profiler, 1 thread, median per
node over 40 steps, summed per op type.

    python profile_step.py ['{"accuracy_level": 0}']
"""

import collections
import json
import os
import statistics
import sys

import onnxruntime as ort

import runtime
from compare import model_path

STEPS = 40
_init = ort.InferenceSession.__init__


def _profiling_init(self, model, so=None, **kw):
    so.enable_profiling = True
    so.profile_file_prefix = "/tmp/smollm-prof"
    _init(self, model, so, **kw)


if __name__ == "__main__":
    ort.InferenceSession.__init__ = _profiling_init
    kw = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    lm = runtime.SmolLM(model_path(), threads=1, **kw)
    lm.prefill(list(range(100, 300)))
    for _ in range(STEPS):
        lm.forward([5])
    path = lm.sess.end_profiling()
    with open(path) as f:
        events = json.load(f)
    os.remove(path)
    runs = [e["dur"] for e in events if e.get("name") == "model_run"][-STEPS:]
    per_node, op_of = collections.defaultdict(list), {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_node[e["name"]].append(e["dur"])
            op_of[e["name"]] = e["args"]["op_name"]
    per_op, count = collections.Counter(), collections.Counter()
    for name, durs in per_node.items():
        per_op[op_of[name]] += statistics.median(durs[-STEPS:])
        count[op_of[name]] += 1
    print(f"step (model_run) median {statistics.median(runs) / 1000:.2f} ms; "
          f"sum of node medians {sum(per_op.values()) / 1000:.2f} ms")
    for op, us in per_op.most_common():
        print(f"  {op:34s} {us / 1000:7.3f} ms  ({count[op]} nodes)")
