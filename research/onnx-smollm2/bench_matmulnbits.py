"""Why the Q4_1 layout of runtime.py: one MatMulNBits (K=576, N=1536, M=1) timed with each
kind of zero point and accuracy level.  Float zero points (the direct encoding of Q4_1)
take ONNX Runtime's slow path; uint8 zero points with accuracy_level 4 are the fast one.

    python bench_matmulnbits.py
"""

import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

K, N, BLOCK = 576, 1536, 32
NB = K // BLOCK
rng = np.random.default_rng(0)


def session(zp_kind: str, acc: int, bits: int = 4, n: int = N) -> ort.InferenceSession:
    inits = {
        "B": rng.integers(0, 256, size=(n, NB, BLOCK * bits // 8), dtype=np.uint8),
        "S": rng.random((n, NB), dtype=np.float32) * 0.01,
    }
    if zp_kind == "float":
        inits["Z"] = rng.random((n, NB), dtype=np.float32) * 8
    elif zp_kind == "uint8":
        inits["Z"] = rng.integers(0, 256, size=(n, (NB * bits + 7) // 8), dtype=np.uint8)
    node = helper.make_node("MatMulNBits", ["A", *inits], ["Y"], domain="com.microsoft",
                            K=K, N=n, bits=bits, block_size=BLOCK, accuracy_level=acc)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", K])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", n])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, ir_version=10, opset_imports=[
        helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


def best_ms(sess: ort.InferenceSession, m: int, reps: int) -> float:
    a = rng.random((m, K), dtype=np.float32)
    sess.run(None, {"A": a})
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        sess.run(None, {"A": a})
        times.append(time.perf_counter() - t)
    return 1000 * min(times)


if __name__ == "__main__":
    for zp in ("none", "uint8", "float"):
        for acc in (0, 4):
            s = session(zp, acc)
            print(f"bits=4 zero_points={zp:5s} accuracy_level={acc}: "
                  f"M=1 {best_ms(s, 1, 200):.3f} ms, M=200 {best_ms(s, 200, 10):.2f} ms")
    for acc in (0, 4):  # the tied lm_head: 8-bit, N = 49152
        s = session("none", acc, bits=8, n=49152)
        print(f"lm_head bits=8 accuracy_level={acc}: M=1 {best_ms(s, 1, 20):.2f} ms")
