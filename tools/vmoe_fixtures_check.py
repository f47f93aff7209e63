#!/usr/bin/env python3
"""Checks tests/fixtures/vmoe/ against an independent float64 NumPy statement of the math.

tools/vmoe_fixtures.py writes the fixtures with the official code (vmoe, soft-moe-pytorch); this
script re-states, in plain NumPy (float64), what tests/fixtures/vmoe/README.md says that code
computes, runs it on every case's model.safetensors / config.json / io.safetensors, and prints the
largest difference from the official outputs. It is the README's math in executable form, for
whoever reimplements it (softmoe's Rust side); it plays no part in writing the fixtures.

    python3 tools/vmoe_fixtures_check.py [--dir tests/fixtures/vmoe]

Needs numpy, safetensors and ml_dtypes (for bfloat16 round-to-nearest-even). Exits non-zero when
a difference exceeds its tolerance: 1e-5 for f32 outputs, 1e-4 for the bf16 ones.
"""

import argparse
import json
import math
import os
import sys

import ml_dtypes
import numpy as np
from safetensors.numpy import load_file

EPS_LN = 1e-6  # flax.linen.LayerNorm default epsilon
EPS_ROUTER = 1e-6  # vmoe/projects/soft_moe/router.py normalize(eps=1e-6)


def bf16(a):
    """Round to bfloat16 (nearest even) as vmoe's _cast_to_bfloat16 does, back as float64.
    vmoe rounds float32 values: go through float32 first."""
    return np.asarray(a, np.float32).astype(ml_dtypes.bfloat16).astype(np.float64)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def gelu_erf(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def softmax(x, axis):
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def layer_norm(x, scale, bias=None):
    # flax LayerNorm (use_fast_variance=True): var = max(0, E[x^2] - E[x]^2) over the last axis.
    mean = x.mean(-1, keepdims=True)
    var = np.maximum(0.0, (x * x).mean(-1, keepdims=True) - mean * mean)
    y = (x - mean) / np.sqrt(var + EPS_LN) * scale
    return y if bias is None else y + bias


# ------------------------------------------------------------------------------------------------
# vmoe Soft MoE layer (MlpMoeBlock + SoftRouter), one group = one example.


def soft_moe_vmoe(x, w, prefix, bf16_dispatch):
    """x [G, m, d] -> (y [G, m, d], D [G, m, n*p], C [G, m, n*p])."""
    mu = w[prefix + "Router/mu"]  # [d, n, p]
    scale = float(np.asarray(w[prefix + "Router/scale"]).reshape(()))
    k0, b0 = w[prefix + "Mlp/Dense_0/kernel"], w[prefix + "Mlp/Dense_0/bias"]  # [n,d,h] [n,h]
    k1, b1 = w[prefix + "Mlp/Dense_1/kernel"], w[prefix + "Mlp/Dense_1/bias"]  # [n,h,d] [n,d]
    d, n, p = mu.shape
    xn = x / np.sqrt((x * x).sum(-1, keepdims=True) + EPS_ROUTER)
    mun = mu / np.sqrt((mu * mu).sum(0, keepdims=True) + EPS_ROUTER)
    logits = scale * np.einsum("gmd,dj->gmj", xn, mun.reshape(d, n * p))  # j = e*p + s
    D = softmax(logits, axis=1)  # over tokens
    C = softmax(logits, axis=2)  # over all n*p slots
    xd = bf16(x) if bf16_dispatch else x
    xs = np.einsum("gmj,gmd->gjd", D, xd).reshape(x.shape[0], n, p, d)
    hid = gelu_tanh(np.einsum("gepd,edh->geph", xs, k0) + b0[None, :, None, :])
    ys = np.einsum("geph,ehd->gepd", hid, k1) + b1[None, :, None, :]
    ys = ys.reshape(x.shape[0], n * p, d)
    if bf16_dispatch:
        ys = bf16(ys)
    return np.einsum("gmj,gjd->gmd", C, ys), D, C


# ------------------------------------------------------------------------------------------------
# vmoe ViT (VisionTransformerMoe).


def attention(xq, xkv, w, prefix, qk_norm):
    """flax MultiHeadDotProductAttention: xq [B, Tq, d], xkv [B, Tk, d]."""
    q = np.einsum("btd,dhk->bthk", xq, w[prefix + "query/kernel"]) + w[prefix + "query/bias"]
    k = np.einsum("btd,dhk->bthk", xkv, w[prefix + "key/kernel"]) + w[prefix + "key/bias"]
    v = np.einsum("btd,dhk->bthk", xkv, w[prefix + "value/kernel"]) + w[prefix + "value/bias"]
    if qk_norm:  # LayerNorm over head_dim, one [dh] scale shared by all heads, no bias
        q = layer_norm(q, w[prefix + "query_ln/scale"])
        k = layer_norm(k, w[prefix + "key_ln/scale"])
    q = q / math.sqrt(q.shape[-1])
    a = softmax(np.einsum("bqhk,bthk->bhqt", q, k), axis=-1)
    o = np.einsum("bhqt,bthk->bqhk", a, v)
    return np.einsum("bqhk,hkd->bqd", o, w[prefix + "out/kernel"]) + w[prefix + "out/bias"]


def mlp(x, w, prefix):
    h = gelu_tanh(x @ w[prefix + "Dense_0/kernel"] + w[prefix + "Dense_0/bias"])
    return h @ w[prefix + "Dense_1/kernel"] + w[prefix + "Dense_1/bias"]


def vit(images, w, cfg, bf16_dispatch):
    B, H, W, Cc = images.shape
    P = cfg["patch_size"]
    gh, gw = H // P, W // P
    patches = images.reshape(B, gh, P, gw, P, Cc).transpose(0, 1, 3, 2, 4, 5)
    patches = patches.reshape(B, gh * gw, P * P * Cc)  # (py, px, c) order, tokens row-major
    kern = w["embedding/kernel"].reshape(P * P * Cc, -1)
    x = patches @ kern + w["embedding/bias"]
    out = {"embedding": x.reshape(B, gh, gw, -1)}
    if cfg["classifier"] == "token":
        cls = np.broadcast_to(w["cls"], (B, 1, x.shape[-1]))
        x = np.concatenate([cls, x], axis=1)
    x = x + w["Encoder/posembed_input/pos_embedding"]
    qk = cfg["attention_qk_norm"]
    for k in range(cfg["num_layers"]):
        pre = f"Encoder/encoderblock_{k}/"
        y = layer_norm(x, w[pre + "LayerNorm_0/scale"], w[pre + "LayerNorm_0/bias"])
        x = x + attention(y, y, w, pre + "SelfAttention/", qk)
        y = layer_norm(x, w[pre + "LayerNorm_1/scale"], w[pre + "LayerNorm_1/bias"])
        if k in cfg["moe_layers"]:
            y, D, C = soft_moe_vmoe(y, w, pre + "Moe/", bf16_dispatch)
            out[f"block_{k}_dispatch"], out[f"block_{k}_combine"] = D, C
        else:
            y = mlp(y, w, pre + "Mlp/")
        x = x + y
        out[f"block_{k}"] = x
    x = layer_norm(x, w["Encoder/encoder_norm/scale"], w["Encoder/encoder_norm/bias"])
    out["encoded"] = x
    if cfg["classifier"] == "gap":
        r = x.mean(axis=1)
    elif cfg["classifier"] == "token":
        r = x[:, 0]
    elif cfg["classifier"] == "map":
        probe = np.broadcast_to(w["MapHead/probe"], (B, 1, x.shape[-1]))
        a = attention(probe, x, w, "MapHead/MultiHeadDotProductAttention/", qk)
        r = (a + mlp(layer_norm(a, w["MapHead/LayerNorm/scale"], w["MapHead/LayerNorm/bias"]),
                     w, "MapHead/Mlp/"))[:, 0]
    else:
        raise ValueError(cfg["classifier"])
    out["pre_logits"] = r
    out["logits"] = r @ w["head/kernel"] + w["head/bias"]
    return out


# ------------------------------------------------------------------------------------------------
# soft-moe-pytorch 0.1.9 SoftMoE (RMSNorm, FeedForward experts).


def soft_moe_pytorch(x, w):
    def rms(t, gamma):  # l2norm(t) * sqrt(dim) * gamma; F.normalize: t / max(||t||, 1e-12)
        return t / np.maximum(np.linalg.norm(t, axis=-1, keepdims=True), 1e-12) \
            * math.sqrt(t.shape[-1]) * gamma

    se = w["slot_embeds"]  # [n, p, d]
    n, p, d = se.shape
    xn = rms(x, w["norm.gamma"])
    sn = rms(se, w["slot_norm.gamma"])
    logits = np.einsum("bmd,esd->bmes", xn, sn).reshape(x.shape[0], x.shape[1], n * p)
    D = softmax(logits, axis=1)
    C = softmax(logits, axis=2)
    slots = np.einsum("bmd,bmj->bjd", xn, D).reshape(x.shape[0], n, p, d)  # normalised tokens
    outs = []
    for e in range(n):
        pre = f"experts.experts.{e}."
        h = gelu_erf(slots[:, e] @ w[pre + "0.weight"].T + w[pre + "0.bias"])  # weight [h, d]
        outs.append(h @ w[pre + "3.weight"].T + w[pre + "3.bias"])  # weight [d, h]
    ys = np.stack(outs, axis=1)
    y = np.einsum("bjd,bmj->bmd", ys.reshape(x.shape[0], n * p, d), C)
    return y, xn, slots, ys


# ------------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default="tests/fixtures/vmoe")
    args = ap.parse_args()
    worst = []

    def report(case, what, got, want, tol):
        err = float(np.abs(np.asarray(got, np.float64) - want).max())
        ok = err <= tol
        worst.append(ok)
        print(f"{case:18s} {what:24s} max|diff| {err:.3g}  (tol {tol:g}) {'ok' if ok else 'FAIL'}")

    for case in sorted(os.listdir(args.dir)):
        d = os.path.join(args.dir, case)
        if not os.path.isdir(d):
            continue
        w = {k: v.astype(np.float64) for k, v in load_file(os.path.join(d, "model.safetensors")).items()}
        io = {k: v.astype(np.float64) for k, v in load_file(os.path.join(d, "io.safetensors")).items()}
        cfg = json.load(open(os.path.join(d, "config.json")))
        if case == "soft_moe_pytorch":
            y, xn, slots_in, slots_out = soft_moe_pytorch(io["x"], w)
            report(case, "y", y, io["y"], 1e-5)
            report(case, "x_norm", xn, io["x_norm"], 1e-5)
            report(case, "slots_in", slots_in, io["slots_in"], 1e-5)
            report(case, "slots_out", slots_out, io["slots_out"], 1e-5)
        elif "image_size" not in cfg:  # the layer
            for mode in ("f32", "bf16"):
                y, D, C = soft_moe_vmoe(io["x"], w, "", mode == "bf16")
                report(case, f"y_{mode}", y, io[f"y_{mode}"], 1e-5 if mode == "f32" else 1e-4)
            report(case, "dispatch", D, io["dispatch"], 1e-6)
            report(case, "combine", C, io["combine"], 1e-6)
        else:
            for mode in ("f32", "bf16"):
                out = vit(io["images"], w, cfg, mode == "bf16")
                report(case, f"logits_{mode}", out["logits"], io[f"logits_{mode}"],
                       1e-5 if mode == "f32" else 1e-4)
                if mode == "f32":
                    report(case, "embedding", out["embedding"], io["embedding"], 1e-5)
                    for k in range(cfg["num_layers"]):
                        report(case, f"block_{k}_f32", out[f"block_{k}"], io[f"block_{k}_f32"], 1e-5)
    sys.exit(0 if all(worst) else 1)


if __name__ == "__main__":
    main()
