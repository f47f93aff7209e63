#!/usr/bin/env python3
"""ONNX graphs of softmoe's benchmark cases, for the onnxruntime-web comparison (bench/onnx/run.mjs).

Writes into OUT (default target/bench-onnx), one folder per case:

  demo-layer/   the Soft MoE layer of the demo's shape (m=49, d=64, n=8, p=2, h=128)
  vits-layer/   the ViT-S/16 layer of the paper (m=196, d=384, n=128, p=1, h=1536; ~604 MB of weights)
  soft-moe-vit/ the shipped Soft MoE ViT (weights/soft-moe-vit: config.json + model.safetensors)

Each layer folder holds `layer.safetensors` (random weights in softmoe's layer format, docs/weights.md),
`layer.onnx` (the same weights as initializers), and per batch b `x_b{b}.safetensors` (the input) and
`ref_b{b}.safetensors` (y, dispatch, combine from softmoe's f64 CPU reference: `softmoe layer --cpu`).
The ViT folder holds `model.onnx`, `images_b{b}.safetensors` (the first b of weights/samples.safetensors)
and `ref_b{b}.safetensors` (logits from `softmoe classify --json --cpu`). `manifest.json` lists it all.

The graphs state SPEC §1 and §2 op by op, as a web developer exporting these models would get them
(opset 17, float32):
- Soft MoE: X̂ = X / sqrt(ΣX² + 1e-6) per token and Φ̂ = Φ / sqrt(ΣΦ² + 1e-6) per slot (eps inside the
  square root; Φ̂ depends on weights only, so ORT folds it at load), L = scale·X̂Φ̂, D = Softmax over the
  tokens axis, C = Softmax over the slots axis, X̃ = DᵀX (the un-normalised X), the expert MLPs batched
  per expert as MatMul over [n, b·p, d] with the biases added and tanh GELU written out
  (0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))), Ỹ back to [b, n·p, d], Y = CỸ. Outputs y [b, m, d] and
  dispatch, combine [b, m, n, p]: what softmoe's `layer.forward` returns.
- ViT: patchify (Reshape/Transpose) and the embedding MatMul + bias, + position embedding, pre-LN blocks
  (LayerNormalization eps from the config; one fused QKV MatMul, attention as MatMul·1/√dh → Softmax →
  MatMul; the out projection; the dense MLP or the Soft MoE layer above), final LayerNormalization, mean
  over tokens, the head. Input images [b, S, S, C] in [0, 1]; output logits [b, classes].

Before anything is timed, every graph is run here with the `onnx` package's own reference evaluator
(NumPy, float32) on the same inputs and checked against softmoe's f64 CPU reference: max |Δ| ≤ 1e-4 on
y, dispatch, combine and the logits, or the script fails.

Needs Python 3 with the PyPI packages `onnx` and `numpy` (`cargo xtask bench-web` makes a venv outside
the repository) and the `softmoe` binary (`cargo build --release --bin softmoe`).

usage: make_graphs.py [--out DIR] [--softmoe PATH] [--root REPO] [--only demo-layer,vits-layer,soft-moe-vit]
"""

import argparse
import json
import math
import os
import struct
import subprocess
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

OPSET = 17
TOL = 1e-4
NORM_EPS = 1e-6

# ---- safetensors (float32), the format softmoe reads ------------------------------------------------


def read_safetensors(path):
    with open(path, "rb") as f:
        buf = f.read()
    n = struct.unpack("<Q", buf[:8])[0]
    header = json.loads(buf[8 : 8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name} is {t['dtype']}, expected F32")
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(buf, dtype="<f4", count=(b - a) // 4, offset=8 + n + a).reshape(t["shape"]).copy()
    return out


def write_safetensors(path, tensors, metadata=None):
    header, offset = {}, 0
    if metadata:
        header["__metadata__"] = metadata
    arrays = []
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        arrays.append(a)
    text = json.dumps(header)
    text += " " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text.encode())
        for a in arrays:
            f.write(a.tobytes())
    os.replace(tmp, path)


# ---- a small graph builder ---------------------------------------------------------------------------


class Graph:
    def __init__(self):
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, array, hint="c"):
        n = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(array), n))
        return n

    def shape(self, dims):
        return self.const(np.array(dims, dtype=np.int64), "shape")

    def op(self, op_type, inputs, hint=None, **attrs):
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def reshape(self, x, dims):
        return self.op("Reshape", [x, self.shape(dims)])

    def transpose(self, x, perm):
        return self.op("Transpose", [x], perm=perm)

    def alias(self, x, name):
        self.nodes.append(helper.make_node("Identity", [x], [name]))
        return name

    def model(self, inputs, outputs, doc):
        g = helper.make_graph(self.nodes, "softmoe_bench", inputs, outputs, self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="softmoe bench/onnx/make_graphs.py")
        m.ir_version = 8
        m.doc_string = doc
        onnx.checker.check_model(m)
        return m


def f32(a):
    return np.asarray(a, dtype=np.float32)


def gelu(g, x, kind):
    if kind == "erf":
        # 0.5·x·(1 + erf(x/√2))
        e = g.op("Erf", [g.op("Mul", [x, g.const(f32(1 / math.sqrt(2)))])])
        return g.op("Mul", [g.op("Mul", [x, g.const(f32(0.5))]), g.op("Add", [e, g.const(f32(1.0))])])
    # tanh approximation (Flax nn.gelu's default), written out: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    x3 = g.op("Mul", [g.op("Mul", [x, x]), x])
    inner = g.op("Mul", [g.op("Add", [x, g.op("Mul", [x3, g.const(f32(0.044715))])]), g.const(f32(math.sqrt(2 / math.pi)))])
    t = g.op("Tanh", [inner])
    return g.op("Mul", [g.op("Mul", [x, g.const(f32(0.5))]), g.op("Add", [t, g.const(f32(1.0))])])


def l2_normalize(g, x, axis):
    """x / sqrt(Σ x² + 1e-6) along `axis` (eps inside the square root, as vmoe)."""
    ss = g.op("ReduceSum", [g.op("Mul", [x, x]), g.const(np.array([axis], dtype=np.int64))], keepdims=1)
    return g.op("Div", [x, g.op("Sqrt", [g.op("Add", [ss, g.const(f32(NORM_EPS))])])])


def soft_moe(g, x, w, m, gelu_kind="tanh", normalize=True):
    """The Soft MoE layer of SPEC §1 on x [b, m, d]; returns (y [b, m, d], D, C [b, m, n·p])."""
    d, n, p = w["Router/mu"].shape
    h = w["Mlp/Dense_0/kernel"].shape[2]
    s = n * p
    mu = g.const(f32(w["Router/mu"]).reshape(d, s), "mu")  # slot j = e·p + s: column j
    xn, phi = (l2_normalize(g, x, 2), l2_normalize(g, mu, 0)) if normalize else (x, mu)
    logits = g.op("Mul", [g.op("MatMul", [xn, phi]), g.const(f32(w["Router/scale"]).reshape(()), "scale")], "logits")
    dispatch = g.op("Softmax", [logits], "dispatch", axis=1)  # over tokens, per slot
    combine = g.op("Softmax", [logits], "combine", axis=2)  # over slots, per token
    xs = g.op("MatMul", [g.transpose(dispatch, [0, 2, 1]), x], "slot_inputs")  # X̃ = DᵀX [b, s, d]
    # Expert e's rows: its p slots of every example, [n, b·p, d].
    xe = g.reshape(g.transpose(g.reshape(xs, [-1, n, p, d]), [1, 0, 2, 3]), [n, -1, d])
    w0 = g.const(f32(w["Mlp/Dense_0/kernel"]), "w0")
    b0 = g.const(f32(w["Mlp/Dense_0/bias"]).reshape(n, 1, h), "b0")
    w1 = g.const(f32(w["Mlp/Dense_1/kernel"]), "w1")
    b1 = g.const(f32(w["Mlp/Dense_1/bias"]).reshape(n, 1, d), "b1")
    hid = gelu(g, g.op("Add", [g.op("MatMul", [xe, w0]), b0]), gelu_kind)
    ye = g.op("Add", [g.op("MatMul", [hid, w1]), b1])  # [n, b·p, d]
    ys = g.reshape(g.transpose(g.reshape(ye, [n, -1, p, d]), [1, 0, 2, 3]), [-1, s, d])  # Ỹ [b, s, d]
    y = g.op("MatMul", [combine, ys], "y")  # Y = CỸ
    return y, dispatch, combine


def layer_graph(w, m, gelu_kind, normalize):
    d, n, p = w["Router/mu"].shape
    g = Graph()
    y, dm, cm = soft_moe(g, "x", w, m, gelu_kind, normalize)
    g.alias(y, "y")
    g.alias(g.reshape(dm, [-1, m, n, p]), "dispatch")
    g.alias(g.reshape(cm, [-1, m, n, p]), "combine")
    fl = TensorProto.FLOAT
    return g.model(
        [helper.make_tensor_value_info("x", fl, ["b", m, d])],
        [helper.make_tensor_value_info("y", fl, ["b", m, d]), helper.make_tensor_value_info("dispatch", fl, ["b", m, n, p]),
         helper.make_tensor_value_info("combine", fl, ["b", m, n, p])],
        f"Soft MoE layer m={m} d={d} n={n} p={p} (SPEC §1), made by bench/onnx/make_graphs.py",
    )


def vit_graph(cfg, w):
    """The ViT of SPEC §2 (src/reference/vit.rs) from config.json and model.safetensors tensors."""
    S, P, C, d = cfg["image_size"], cfg["patch_size"], cfg["channels"], cfg["hidden_size"]
    H, L, classes = cfg["num_heads"], cfg["num_layers"], cfg["num_classes"]
    gs, dh = S // P, d // H
    m = gs * gs
    eps = float(cfg.get("layer_norm_eps", 1e-6))
    gelu_kind = cfg.get("gelu", "tanh")
    moe = set(cfg.get("moe_layers", []))
    if cfg.get("moe_type", "soft") != "soft" or cfg.get("classifier", "gap") != "gap":
        raise ValueError("only Soft MoE ViTs with global average pooling are made into graphs")
    g = Graph()
    # Patchify: [b, S, S, C] → [b, gy, py, gx, px, C] → [b, gy, gx, py, px, C] → [b, m, P·P·C].
    patches = g.reshape(g.transpose(g.reshape("images", [-1, gs, P, gs, P, C]), [0, 1, 3, 2, 4, 5]), [-1, m, P * P * C])
    x = g.op("Add", [g.op("MatMul", [patches, g.const(f32(w["embedding/kernel"]).reshape(P * P * C, d), "embedding")]),
                     g.const(f32(w["embedding/bias"]), "embedding_bias")])
    x = g.op("Add", [x, g.const(f32(w["Encoder/posembed_input/pos_embedding"]), "pos")])

    def ln(x, pre):
        return g.op("LayerNormalization", [x, g.const(f32(w[f"{pre}/scale"])), g.const(f32(w[f"{pre}/bias"]))], "ln", axis=-1, epsilon=eps)

    for k in range(L):
        pre = f"Encoder/encoderblock_{k}/"
        att = pre + "MultiHeadDotProductAttention_1/"
        hN = ln(x, pre + "LayerNorm_0")
        qkv_k = np.concatenate([f32(w[f"{att}{t}/kernel"]).reshape(d, d) for t in ("query", "key", "value")], axis=1)
        qkv_b = np.concatenate([f32(w[f"{att}{t}/bias"]).reshape(d) for t in ("query", "key", "value")])
        qkv = g.op("Add", [g.op("MatMul", [hN, g.const(qkv_k, "qkv")]), g.const(qkv_b, "qkv_bias")])
        qkv = g.transpose(g.reshape(qkv, [-1, m, 3, H, dh]), [2, 0, 3, 1, 4])  # [3, b, H, m, dh]
        q, kk, v = (g.op("Gather", [qkv, g.const(np.array(i, dtype=np.int64))], axis=0) for i in range(3))
        scores = g.op("Mul", [g.op("MatMul", [q, g.transpose(kk, [0, 1, 3, 2])]), g.const(f32(1 / math.sqrt(dh)))])
        a = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])  # [b, H, m, dh]
        a = g.reshape(g.transpose(a, [0, 2, 1, 3]), [-1, m, d])
        o = g.op("Add", [g.op("MatMul", [a, g.const(f32(w[f"{att}out/kernel"]).reshape(d, d), "out")]), g.const(f32(w[f"{att}out/bias"]))])
        x = g.op("Add", [x, o], "residual")
        hN = ln(x, pre + "LayerNorm_2")
        if k in moe:
            lw = {name[len(pre + "Moe/"):]: t for name, t in w.items() if name.startswith(pre + "Moe/")}
            y, _, _ = soft_moe(g, hN, lw, m, gelu_kind, cfg.get("normalize", True))
        else:
            mp = pre + "MlpBlock_3/"
            z = gelu(g, g.op("Add", [g.op("MatMul", [hN, g.const(f32(w[mp + "Dense_0/kernel"]))]), g.const(f32(w[mp + "Dense_0/bias"]))]), gelu_kind)
            y = g.op("Add", [g.op("MatMul", [z, g.const(f32(w[mp + "Dense_1/kernel"]))]), g.const(f32(w[mp + "Dense_1/bias"]))])
        x = g.op("Add", [x, y], "residual")
    x = ln(x, "Encoder/encoder_norm")
    pooled = g.op("ReduceMean", [x], "pool", axes=[1], keepdims=0)
    logits = g.op("Add", [g.op("MatMul", [pooled, g.const(f32(w["head/kernel"]), "head")]), g.const(f32(w["head/bias"]))])
    g.alias(logits, "logits")
    fl = TensorProto.FLOAT
    return g.model([helper.make_tensor_value_info("images", fl, ["b", S, S, C])], [helper.make_tensor_value_info("logits", fl, ["b", classes])],
                   f"Soft MoE ViT (SPEC §2) d={d} blocks={L} moe={sorted(moe)}, made by bench/onnx/make_graphs.py")


# ---- random layers like the Rust bench's (softmoe::random::random_layer: uniform fan-in) --------------


def random_layer(rng, d, n, p, h):
    u = lambda shape, amp: (rng.uniform(-1, 1, size=shape) * amp).astype(np.float32)
    return {
        "Router/mu": u((d, n, p), 1.0),
        "Router/scale": np.array(1.0, dtype=np.float32),
        "Mlp/Dense_0/kernel": u((n, d, h), math.sqrt(3 / d)),
        "Mlp/Dense_0/bias": u((n, h), 0.1),
        "Mlp/Dense_1/kernel": u((n, h, d), math.sqrt(3 / h)),
        "Mlp/Dense_1/bias": u((n, d), 0.1),
    }


LAYERS = {
    # name: (m, d, n, p, h, batches, seed)
    "demo-layer": (49, 64, 8, 2, 128, [1, 64], 11),
    "vits-layer": (196, 384, 128, 1, 1536, [1], 12),
}
VIT_BATCHES = [1, 64]


def max_diff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("a non-finite value")
    return float(np.abs(a - b).max())


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def save_onnx(model, path):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(model.SerializeToString())
    os.replace(tmp, path)


def make_layer(name, out, softmoe, log):
    m, d, n, p, h, batches, seed = LAYERS[name]
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    w = random_layer(rng, d, n, p, h)
    weights = os.path.join(folder, "layer.safetensors")
    write_safetensors(weights, w, {"gelu": "tanh", "normalize": "true"})
    model = layer_graph(w, m, "tanh", True)
    onnx_path = os.path.join(folder, "layer.onnx")
    save_onnx(model, onnx_path)
    evaluator = ReferenceEvaluator(model)
    entry = {"name": name, "kind": "layer", "shape": {"m": m, "d": d, "n": n, "p": p, "h": h},
             "weights": f"{name}/layer.safetensors", "onnx": f"{name}/layer.onnx",
             "weight_bytes": os.path.getsize(weights), "onnx_bytes": os.path.getsize(onnx_path), "batches": []}
    for b in batches:
        x = rng.uniform(-1, 1, size=(b, m, d)).astype(np.float32)
        xin = os.path.join(folder, f"x_b{b}.safetensors")
        ref = os.path.join(folder, f"ref_b{b}.safetensors")
        write_safetensors(xin, {"x": x})
        t0 = time.time()
        run([softmoe, "layer", "--weights", weights, "--input", xin, "--output", ref, "--cpu"])
        want = read_safetensors(ref)
        got = dict(zip(["y", "dispatch", "combine"], evaluator.run(None, {"x": x})))
        diffs = {k: max_diff(got[k], want[k]) for k in ("y", "dispatch", "combine")}
        log(f"{name} b={b}: ONNX graph (onnx reference evaluator, f32) vs softmoe layer --cpu (f64): "
            + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()) + f" ({time.time() - t0:.1f} s)")
        if max(diffs.values()) > TOL:
            raise SystemExit(f"{name} b={b}: the ONNX graph differs from softmoe's f64 reference by {max(diffs.values()):.3e} > {TOL}")
        entry["batches"].append({"b": b, "input": f"{name}/x_b{b}.safetensors", "ref": f"{name}/ref_b{b}.safetensors", "graph_check": diffs})
    return entry


def make_vit(out, root, softmoe, log):
    name = "soft-moe-vit"
    src = os.path.join(root, "weights", name)
    cfg = json.load(open(os.path.join(src, "config.json")))
    w = read_safetensors(os.path.join(src, "model.safetensors"))
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    model = vit_graph(cfg, w)
    onnx_path = os.path.join(folder, "model.onnx")
    save_onnx(model, onnx_path)
    evaluator = ReferenceEvaluator(model)
    samples = read_safetensors(os.path.join(root, "weights", "samples.safetensors"))["images"]
    S, C = cfg["image_size"], cfg["channels"]
    ref_all = [json.loads(l) for l in run([softmoe, "classify", "--model", src, "--images", os.path.join(root, "weights", "samples.safetensors"), "--json", "--cpu"]).splitlines() if l.strip()]
    entry = {"name": name, "kind": "vit", "model": f"{name}", "onnx": f"{name}/model.onnx", "config": cfg,
             "weight_bytes": os.path.getsize(os.path.join(src, "model.safetensors")), "onnx_bytes": os.path.getsize(onnx_path), "batches": []}
    for b in VIT_BATCHES:
        images = samples[:b].reshape(b, S, S, C)
        want = np.array([r["logits"] for r in ref_all[:b]], dtype=np.float32)
        (got,) = evaluator.run(None, {"images": images})
        diff = max_diff(got, want)
        log(f"{name} b={b}: ONNX graph (onnx reference evaluator, f32) vs softmoe classify --cpu (f64) logits: {diff:.2e}")
        if diff > TOL:
            raise SystemExit(f"{name} b={b}: the ONNX graph's logits differ from softmoe's f64 reference by {diff:.3e} > {TOL}")
        write_safetensors(os.path.join(folder, f"images_b{b}.safetensors"), {"images": images})
        write_safetensors(os.path.join(folder, f"ref_b{b}.safetensors"), {"logits": want})
        entry["batches"].append({"b": b, "input": f"{name}/images_b{b}.safetensors", "ref": f"{name}/ref_b{b}.safetensors", "graph_check": {"logits": diff}})
    return entry


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(here)))
    ap.add_argument("--out", default=None)
    ap.add_argument("--softmoe", default=None)
    ap.add_argument("--only", default="demo-layer,vits-layer,soft-moe-vit")
    a = ap.parse_args()
    out = a.out or os.path.join(a.root, "target", "bench-onnx")
    softmoe = a.softmoe or os.path.join(a.root, "target", "release", "softmoe")
    os.makedirs(out, exist_ok=True)
    log = lambda s: print(f"make_graphs: {s}", flush=True)
    log(f"onnx {onnx.__version__}, numpy {np.__version__}, opset {OPSET}; writing {out}")
    cases = []
    for name in a.only.split(","):
        if name in LAYERS:
            cases.append(make_layer(name, out, softmoe, log))
        elif name == "soft-moe-vit":
            cases.append(make_vit(out, a.root, softmoe, log))
        else:
            raise SystemExit(f"unknown case `{name}` (demo-layer, vits-layer, soft-moe-vit)")
    manifest = {"tolerance": TOL, "opset": OPSET, "onnx": onnx.__version__, "numpy": np.__version__, "cases": cases}
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    log(f"manifest in {os.path.join(out, 'manifest.json')}")


if __name__ == "__main__":
    sys.exit(main())
