#!/usr/bin/env python3
"""Writes tests/fixtures/vmoe/: models built and run by the official code, with their outputs.

What it builds
--------------
Small models with random weights (fixed seeds), built and executed by the *real* code — it does
not re-implement any of their math — and, for each, the files softmoe's tests read:

  layer              vmoe's Soft MoE layer exactly as `VisionTransformerMoe` builds it in a MoE
                     block: `vmoe.nn.vit_moe.MlpMoeBlock` with the router
                     `vmoe.projects.soft_moe.router.SoftRouter` (group = one example, experts =
                     vmoe's `MlpBlock`, Dense -> nn.gelu -> Dense). G=2 groups, m=16, d=8, n=4,
                     p=2, h=16.
  vit_gap            `vmoe.nn.vit_moe.VisionTransformerMoe`, classifier "gap", Soft MoE in
                     blocks 2 and 3 of 4.
  vit_token          classifier "token" (class token, 17 tokens, group_size 17), MoE in 1 and 3.
  vit_qknorm         attention_qk_norm=True, "gap", patch 4 (49 tokens).
  vit_map            classifier "map" (vmoe's MapHead, attention pooling).
  vit_map_qknorm     "map" with attention_qk_norm=True (MapHead's attention is then qk-normed too).
  soft_moe_pytorch   one `soft_moe_pytorch.SoftMoE` (PyPI soft-moe-pytorch 0.1.9) layer.

Every vmoe model is initialised with vmoe's own init (`module.init`), then every parameter is
perturbed with seeded random values (kernels get noise of their own scale, biases, LayerNorm
scales, the router scale, the class token, MapHead's probe and the position embeddings get random
values), so that no parameter is trivially 0 or 1 and the experts differ (vmoe's Soft MoE configs
use split_rngs=False, which gives every expert the same init).

Two dispatcher modes
--------------------
`SoftRouter.__call__` (vmoe/projects/soft_moe/router.py) ends with
`dispatcher = Bfloat16Dispatcher(dispatcher)`, always: vmoe "as shipped" rounds the data that it
dispatches (X, before X~ = D^T X) and that it combines (the experts' outputs Y~, before
Y = C Y~) to bfloat16 (`_cast_to_bfloat16` in vmoe/moe.py; D, C and the einsums stay f32).
Outputs "bf16" are vmoe unchanged. For outputs "f32" this script replaces, for the duration of the
run, the module-level name that router.py calls:

    vmoe.projects.soft_moe.router.Bfloat16Dispatcher = lambda dispatcher: dispatcher

so the router returns the plain `EinsumDispatcher(combine_weights, dispatch_weights)` and nothing
is rounded. Nothing else is changed; all computation runs eagerly (no jit) on the CPU, where
`jax.lax.Precision.DEFAULT` is full float32.

How to run
----------
It needs checkouts of google-research/vmoe and of google-research/vision_transformer (vmoe's
vit_moe.py imports `vit_jax.models_vit`; vit_jax is not on PyPI) — each a work tree or a bare git
directory (whose HEAD, or --vmoe-commit / --vit-commit, is exported with `git archive` to a temporary
folder) — and, from PyPI, in a virtual environment outside the repository:

    python3 -m venv /work/venv-fixtures
    /work/venv-fixtures/bin/pip install jax flax ml_collections absl-py numpy safetensors \\
        torch soft-moe-pytorch==0.1.9

(vmoe's other requirements — tensorflow, clu, tfds — are not imported by the modules used here, and
no shim is needed. torch from PyPI brings its CUDA wheels, some GB; the CPU is all that is used.)
Then, from the repository root:

    /work/venv-fixtures/bin/python tools/vmoe_fixtures.py \\
        --vmoe /path/to/vmoe --vit-jax /path/to/vision_transformer [--out tests/fixtures/vmoe] \\
        [--cases layer vit_gap ...]

About two minutes on two CPU cores. CI does not run it; its outputs are committed. Running it
twice writes byte-identical files (except the date in VERSIONS.txt). tests/fixtures/vmoe/README.md
documents the file format and what the official code computes; the script rewrites only the part of
it between the `tensors:begin` / `tensors:end` markers (every case's tensor names and shapes, read
back from the files). VERSIONS.txt records the versions and the command of the run that wrote the
fixtures. `tools/vmoe_fixtures_check.py` (NumPy only) checks the README's math against every output.

Files per case (tests/fixtures/vmoe/<case>/)
--------------------------------------------
  model.safetensors   the parameters, float32, as an exporter writes them:
                      `flax.traverse_util.flatten_dict(params, sep="/")`, names exactly vmoe's;
                      for torch `safetensors.torch.save_file(model.state_dict())`.
  vmoe_config.json    the constructor arguments given to vmoe (or to SoftMoE), its own key names.
  config.json         the same model in softmoe's config.json format (dispatch_bfloat16: false).
  io.safetensors      inputs and official outputs (float32), plus intermediates for debugging.
"""

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

FIXTURE_VERSION = 1

ROUTER = "vmoe.projects.soft_moe.router.SoftRouter"

# ---------------------------------------------------------------------------------------------------
# Case definitions (vmoe constructor arguments, exactly as given).


def vit_case(*, patch, hidden, layers, heads, mlp_dim, moe_layers, experts, slots, classifier,
             qk_norm, image=28, channels=1, classes=10, batch=3, seed=0):
    tokens = (image // patch) ** 2 + (1 if classifier == "token" else 0)
    vmoe_cfg = {
        "num_classes": classes,
        "patch_size": [patch, patch],
        "hidden_size": hidden,
        "classifier": classifier,
        "head_bias_init": -float(np.log(classes)),
        "deterministic": True,
        "encoder": {
            "num_layers": layers,
            "mlp_dim": mlp_dim,
            "num_heads": heads,
            "dropout_rate": 0.0,
            "attention_dropout_rate": 0.0,
            "attention_qk_norm": qk_norm,
            "moe": {
                "layers": list(moe_layers),
                "num_experts": experts,
                # One image = one routing group: all its tokens (with the class token, if any).
                "group_size": tokens,
                "split_rngs": False,
                "router": {
                    "name": ROUTER,
                    "num_slots": slots,
                    "capacity_factor": None,
                    "compute_similarity_metrics": True,
                },
            },
        },
    }
    softmoe_cfg = {
        "image_size": image,
        "channels": channels,
        "patch_size": patch,
        "hidden_size": hidden,
        "num_layers": layers,
        "num_heads": heads,
        "mlp_dim": mlp_dim,
        "num_classes": classes,
        "moe_layers": list(moe_layers),
        "num_experts": experts,
        "slots_per_expert": slots,
        "expert_mlp_dim": mlp_dim,
        "gelu": "tanh",
        "normalize": True,
        "layer_norm_eps": 1e-6,
        "classifier": classifier,
        "attention_qk_norm": qk_norm,
        "dispatch_bfloat16": False,
    }
    return {"kind": "vit", "vmoe": vmoe_cfg, "softmoe": softmoe_cfg, "image": image,
            "channels": channels, "batch": batch, "seed": seed}


CASES = {
    "layer": {"kind": "layer", "groups": 2, "m": 16, "d": 8, "n": 4, "p": 2, "h": 16, "seed": 0},
    "vit_gap": vit_case(patch=7, hidden=16, layers=4, heads=2, mlp_dim=32, moe_layers=(2, 3),
                        experts=4, slots=2, classifier="gap", qk_norm=False, seed=1),
    "vit_token": vit_case(patch=7, hidden=24, layers=4, heads=3, mlp_dim=32, moe_layers=(1, 3),
                          experts=4, slots=1, classifier="token", qk_norm=False, seed=2),
    "vit_qknorm": vit_case(patch=4, hidden=16, layers=2, heads=2, mlp_dim=32, moe_layers=(1,),
                           experts=4, slots=2, classifier="gap", qk_norm=True, seed=3),
    "vit_map": vit_case(patch=7, hidden=16, layers=3, heads=4, mlp_dim=32, moe_layers=(2,),
                        experts=4, slots=2, classifier="map", qk_norm=False, seed=4),
    "vit_map_qknorm": vit_case(patch=7, hidden=16, layers=3, heads=2, mlp_dim=24, moe_layers=(1, 2),
                               experts=4, slots=1, classifier="map", qk_norm=True, seed=5),
    "soft_moe_pytorch": {"kind": "torch", "batch": 2, "seq": 16, "dim": 8, "num_experts": 4,
                         "num_slots": 2, "expert_mult": 2, "seed": 6},
}

# ---------------------------------------------------------------------------------------------------
# Sources: vmoe and vit_jax, from a work tree or a bare git directory.


def _is_bare(path):
    return os.path.isfile(os.path.join(path, "HEAD")) and os.path.isdir(os.path.join(path, "objects"))


def prepare_source(path, package, commit, tmp):
    """A folder that holds `package/` (for sys.path) and the commit it comes from (or None)."""
    path = os.path.abspath(path)
    if _is_bare(path):
        sha = subprocess.run(["git", "--git-dir", path, "rev-parse", commit or "HEAD"], check=True,
                             capture_output=True, text=True).stdout.strip()
        dest = os.path.join(tmp, package)
        os.makedirs(dest)
        archive = subprocess.run(["git", "--git-dir", path, "archive", sha, package], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
        return dest, sha
    if not os.path.isdir(os.path.join(path, package)):
        sys.exit(f"{path}: no {package}/ folder (pass the repository root, or a bare git directory)")
    sha = commit
    if sha is None:
        res = subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True)
        sha = res.stdout.strip() if res.returncode == 0 else None
    return path, sha


# ---------------------------------------------------------------------------------------------------
# Helpers.


def f32(a):
    return np.array(a, dtype=np.float32, order="C")  # (ascontiguousarray would make a 0-d array 1-d)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def perturb(flat, rng):
    """Seeded random values for every parameter of a flattened vmoe tree (sorted names)."""
    out = {}
    for name in sorted(flat):
        a = np.asarray(flat[name], dtype=np.float64)
        leaf = name.rsplit("/", 1)[-1]
        if name.endswith("Router/scale"):
            v = rng.uniform(1.5, 4.0, size=a.shape)
        elif name.endswith("Router/mu"):
            v = a + rng.normal(0.0, 0.5 * a.std(), size=a.shape)
        elif leaf == "bias":
            v = rng.normal(0.0, 0.2, size=a.shape)
        elif leaf == "scale":  # LayerNorm scales, query_ln / key_ln included
            v = 1.0 + rng.normal(0.0, 0.25, size=a.shape)
        elif leaf == "kernel":
            std = a.std()
            if std == 0.0:  # the head: vmoe zero-inits it (head_kernel_zero_init)
                std = 1.0 / np.sqrt(a.shape[0])
            v = a + rng.normal(0.0, std, size=a.shape)
        elif leaf in ("cls", "probe"):
            v = rng.normal(0.0, 0.5, size=a.shape)
        elif leaf == "pos_embedding":
            v = rng.normal(0.0, 0.3, size=a.shape)
        else:
            raise SystemExit(f"perturb: no rule for parameter {name}")
        out[name] = f32(v)
    return out


def images_for(rng, batch, image, channels):
    """Random images in [0, 1], on the value/255 grid like real 8-bit images."""
    return f32(rng.integers(0, 256, size=(batch, image, image, channels)) / 255.0)


def shapes_table(flat):
    return [[k, list(np.shape(v))] for k, v in sorted(flat.items())]


# ---------------------------------------------------------------------------------------------------
# vmoe cases.


class Vmoe:
    """The imported vmoe modules and the f32-dispatcher switch."""

    def __init__(self):
        import jax

        jax.config.update("jax_platforms", "cpu")
        import flax
        import flax.traverse_util
        import jax.numpy as jnp
        import vmoe.moe
        import vmoe.nn.vit_moe
        import vmoe.projects.soft_moe.router

        self.jax, self.jnp, self.flax = jax, jnp, flax
        self.vit_moe = vmoe.nn.vit_moe
        self.router = vmoe.projects.soft_moe.router
        self.moe = vmoe.moe

    @contextlib.contextmanager
    def dispatcher(self, mode):
        """mode "bf16": vmoe unchanged. mode "f32": SoftRouter's Bfloat16Dispatcher wrapper removed."""
        original = self.router.Bfloat16Dispatcher
        if mode == "f32":
            self.router.Bfloat16Dispatcher = lambda dispatcher: dispatcher
        try:
            yield
        finally:
            self.router.Bfloat16Dispatcher = original

    def flatten(self, params):
        return {k: np.asarray(v) for k, v in
                self.flax.traverse_util.flatten_dict(self.flax.core.unfreeze(params), sep="/").items()}

    def unflatten(self, flat):
        return self.flax.traverse_util.unflatten_dict(
            {k: self.jnp.asarray(v) for k, v in flat.items()}, sep="/")

    @staticmethod
    def router_weights(dispatcher):
        """(dispatch, combine) [G, m, n, p] from the dispatcher vmoe's SoftRouter returned."""
        if isinstance(dispatcher, tuple):
            dispatcher = dispatcher[0]
        inner = getattr(dispatcher, "dispatcher", dispatcher)
        return np.asarray(inner.dispatch_weights), np.asarray(inner.combine_weights), dispatcher


def jsonable(cfg):
    return json.loads(json.dumps(cfg))


def to_vmoe_kwargs(cfg):
    """JSON config -> constructor arguments (tuples where vmoe's configs use tuples)."""
    cfg = json.loads(json.dumps(cfg))
    if "patch_size" in cfg:
        cfg["patch_size"] = tuple(cfg["patch_size"])
    moe = cfg.get("encoder", cfg).get("moe")
    if moe is not None:
        moe["layers"] = tuple(moe["layers"])
    return cfg


def build_layer(V, case, out_dir):
    jax, jnp = V.jax, V.jnp
    G, m, d, n, p, h = (case[k] for k in ("groups", "m", "d", "n", "p", "h"))
    vmoe_cfg = {
        "mlp_dim": h,
        "num_experts": n,
        "group_size": m,
        "dropout_rate": 0.0,
        "deterministic": True,
        "split_rngs": False,
        "router": {"name": ROUTER, "num_slots": p, "capacity_factor": None,
                   "compute_similarity_metrics": True},
    }
    # The block's Moe module exactly as EncoderMoe makes it (vit_moe.py: partialclass(MlpMoeBlock,
    # **moe_mlp_params, name='Moe'), then called with dtype=None, deterministic=...).
    layer = V.vit_moe.MlpMoeBlock(dtype=None, **vmoe_cfg)
    rng = np.random.default_rng(case["seed"])
    x = f32(rng.normal(0.0, 1.0, size=(G, m, d)))
    variables = layer.init(jax.random.PRNGKey(case["seed"]), jnp.asarray(x))
    flat = perturb(V.flatten(variables["params"]), rng)
    params = V.unflatten(flat)
    io = {"x": x}
    capture = lambda mdl, method: method == "__call__" and mdl.name == "Router"  # noqa: E731
    for mode in ("f32", "bf16"):
        with V.dispatcher(mode):
            (y, _metrics), state = layer.apply({"params": params}, jnp.asarray(x),
                                               capture_intermediates=capture)
        disp, comb, dispatcher = V.router_weights(state["intermediates"]["Router"]["__call__"][0])
        want = V.moe.Bfloat16Dispatcher if mode == "bf16" else V.moe.EinsumDispatcher
        assert type(dispatcher) is want, (mode, type(dispatcher))
        io[f"y_{mode}"] = f32(y)
        io[f"dispatch_{mode}"] = f32(disp.reshape(G, m, n * p))
        io[f"combine_{mode}"] = f32(comb.reshape(G, m, n * p))
    # The router runs in f32 in both modes: same D and C; store them once.
    for k in ("dispatch", "combine"):
        assert np.array_equal(io[f"{k}_f32"], io[f"{k}_bf16"]), k
        io[k] = io.pop(f"{k}_f32")
        del io[f"{k}_bf16"]
    softmoe_cfg = {"n": n, "p": p, "d": d, "h": h, "gelu": "tanh", "normalize": True,
                   "dispatch_bfloat16": False}
    return flat, io, vmoe_cfg, softmoe_cfg


def build_vit(V, case, out_dir):
    jax, jnp = V.jax, V.jnp
    vmoe_cfg = case["vmoe"]
    model = V.vit_moe.VisionTransformerMoe(**to_vmoe_kwargs(vmoe_cfg))
    rng = np.random.default_rng(case["seed"])
    images = images_for(rng, case["batch"], case["image"], case["channels"])
    variables = model.init(jax.random.PRNGKey(case["seed"]), jnp.asarray(images))
    flat = perturb(V.flatten(variables["params"]), rng)
    params = V.unflatten(flat)
    moe_layers = vmoe_cfg["encoder"]["moe"]["layers"]
    n = vmoe_cfg["encoder"]["moe"]["num_experts"]
    p = vmoe_cfg["encoder"]["moe"]["router"]["num_slots"]

    def capture(mdl, method):
        return method == "__call__" and mdl.name is not None and (
            mdl.name.startswith("encoderblock_") or mdl.name in ("embedding", "Encoder", "Router",
                                                                   "pre_logits"))

    io = {"images": images}
    for mode in ("f32", "bf16"):
        with V.dispatcher(mode):
            (logits, _metrics), state = model.apply({"params": params}, jnp.asarray(images),
                                                    capture_intermediates=capture)
        inter = state["intermediates"]
        io[f"logits_{mode}"] = f32(logits)
        emb = f32(inter["embedding"]["__call__"][0])
        if mode == "f32":
            io["embedding"] = emb
        else:
            assert np.array_equal(io["embedding"], emb)
        enc = inter["Encoder"]
        for k in range(vmoe_cfg["encoder"]["num_layers"]):
            blk = enc[f"encoderblock_{k}"]
            out = blk["__call__"][0]
            if isinstance(out, tuple):
                out = out[0]
            io[f"block_{k}_{mode}"] = f32(out)
            if k in moe_layers:
                disp, comb, dispatcher = V.router_weights(blk["Moe"]["Router"]["__call__"][0])
                want = V.moe.Bfloat16Dispatcher if mode == "bf16" else V.moe.EinsumDispatcher
                assert type(dispatcher) is want, (mode, type(dispatcher))
                B, T = disp.shape[:2]
                io[f"block_{k}_dispatch_{mode}"] = f32(disp.reshape(B, T, n * p))
                io[f"block_{k}_combine_{mode}"] = f32(comb.reshape(B, T, n * p))
        io[f"encoded_{mode}"] = f32(enc["__call__"][0][0])
        io[f"pre_logits_{mode}"] = f32(inter["pre_logits"]["__call__"][0])
    return flat, io, vmoe_cfg, case["softmoe"]


# ---------------------------------------------------------------------------------------------------
# soft-moe-pytorch.


def build_torch(case, out_dir):
    import torch
    from soft_moe_pytorch import SoftMoE

    torch.manual_seed(case["seed"])
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    cfg = {"dim": case["dim"], "num_experts": case["num_experts"], "num_slots": case["num_slots"],
           "expert_mult": case["expert_mult"], "dropout": 0.0, "geglu": False,
           "use_layernorm": False, "is_distributed": False}
    model = SoftMoE(**cfg).eval()
    g = torch.Generator().manual_seed(case["seed"])
    with torch.no_grad():
        for name, prm in sorted(model.named_parameters()):
            if name.endswith("gamma"):  # RMSNorm weights, init ones
                prm.copy_(1.0 + 0.25 * torch.randn(prm.shape, generator=g))
            elif name.endswith("bias"):
                prm.copy_(0.2 * torch.randn(prm.shape, generator=g))
            # slot_embeds (randn) and the Linear weights (kaiming uniform) keep torch's init
        x = torch.randn(case["batch"], case["seq"], case["dim"], generator=g)
        # Intermediates, read with forward hooks (nothing recomputed): the RMSNorm'd tokens
        # (model.norm's output) and the experts' slot inputs / outputs [B, n, p, d].
        seen = {}
        hooks = [
            model.norm.register_forward_hook(lambda m, i, o: seen.__setitem__("x_norm", o)),
            model.experts.register_forward_hook(
                lambda m, i, o: seen.update(slots_in=i[0], slots_out=o)),
        ]
        y = model(x)
        for hk in hooks:
            hk.remove()
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    flat = {k: f32(v.numpy()) for k, v in state.items()}
    io = {"x": f32(x.numpy()), "y": f32(y.numpy())}
    io.update({k: f32(v.detach().numpy()) for k, v in seen.items()})
    softmoe_cfg = {"variant": "soft-moe-pytorch", "n": case["num_experts"], "p": case["num_slots"],
                   "d": case["dim"], "h": int(case["dim"] * case["expert_mult"]), "gelu": "erf"}
    return state, flat, io, cfg, softmoe_cfg


# ---------------------------------------------------------------------------------------------------


def save_case(out_root, name, flat, io, vmoe_cfg, softmoe_cfg, torch_state=None):
    from safetensors.numpy import save_file

    d = os.path.join(out_root, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    if torch_state is not None:
        from safetensors.torch import save_file as save_torch

        save_torch(torch_state, os.path.join(d, "model.safetensors"))
    else:
        save_file({k: f32(v) for k, v in flat.items()}, os.path.join(d, "model.safetensors"))
    save_file({k: f32(v) for k, v in io.items()}, os.path.join(d, "io.safetensors"))
    write_json(os.path.join(d, "vmoe_config.json"), jsonable(vmoe_cfg))
    write_json(os.path.join(d, "config.json"), softmoe_cfg)
    # Summary line for the log.
    if "y_f32" in io:
        a, b = io["y_f32"], io["y_bf16"]
    elif "logits_f32" in io:
        a, b = io["logits_f32"], io["logits_bf16"]
    else:
        print(f"{name}: {len(flat)} tensors, max|y| {np.abs(io['y']).max():.4g}")
        return shapes_table(flat)
    rel = float(np.abs(a - b).max() / np.abs(a).max())
    print(f"{name}: {len(flat)} tensors, max|out| {np.abs(a).max():.4g}, "
          f"max|f32-bf16| {np.abs(a - b).max():.3g} ({100 * rel:.3f} % of max)")
    return shapes_table(flat)


TENSORS_BEGIN = "<!-- tensors:begin (written by tools/vmoe_fixtures.py) -->"
TENSORS_END = "<!-- tensors:end -->"


def tensor_section(shapes):
    """Markdown: each case's model.safetensors names and shapes, blocks / experts collapsed."""
    lines = [TENSORS_BEGIN, ""]
    for case, table in shapes.items():
        groups = {}
        for name, shape in table:
            m = re.match(r"^(.*?)(encoderblock_|experts\.experts\.)(\d+)(.*)$", name)
            if m:
                key = (m.group(1) + m.group(2) + "{k}" + m.group(4), tuple(shape))
                groups.setdefault(key, []).append(int(m.group(3)))
            else:
                groups.setdefault((name, tuple(shape)), None)
        lines += [f"**{case}** ({len(table)} tensors)", "", "```"]
        for (name, shape), ks in sorted(groups.items(), key=lambda kv: kv[0][0]):
            where = "" if ks is None else "   k = " + ",".join(map(str, sorted(ks)))
            lines.append(f"{name} {list(shape)}{where}")
        lines += ["```", ""]
    lines.append(TENSORS_END)
    return "\n".join(lines)


def write_tensor_section(readme, shapes):
    """Replaces the generated section of README.md (between the markers), or starts a README."""
    section = tensor_section(shapes)
    text = open(readme, encoding="utf-8").read() if os.path.exists(readme) else ""
    if TENSORS_BEGIN in text and TENSORS_END in text:
        head, rest = text.split(TENSORS_BEGIN, 1)
        tail = rest.split(TENSORS_END, 1)[1]
        text = head + section + tail
    else:
        text = text + ("\n" if text else "# vmoe fixtures\n\n") + section + "\n"
    with open(readme, "w", encoding="utf-8") as f:
        f.write(text)


def version(pkg):
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vmoe", required=True, help="google-research/vmoe: work tree or bare git dir")
    ap.add_argument("--vmoe-commit", default=None)
    ap.add_argument("--vit-jax", required=True,
                    help="google-research/vision_transformer: work tree or bare git dir")
    ap.add_argument("--vit-commit", default=None)
    ap.add_argument("--out", default="tests/fixtures/vmoe")
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="vmoe_fixtures_")
    try:
        vmoe_root, vmoe_sha = prepare_source(args.vmoe, "vmoe", args.vmoe_commit, tmp)
        vit_root, vit_sha = prepare_source(args.vit_jax, "vit_jax", args.vit_commit, tmp)
        sys.path[:0] = [vmoe_root, vit_root]
        os.makedirs(args.out, exist_ok=True)
        V = None
        for name in args.cases:
            case = CASES[name]
            if case["kind"] == "torch":
                state, flat, io, vcfg, scfg = build_torch(case, args.out)
                save_case(args.out, name, flat, io, vcfg, scfg, torch_state=state)
                continue
            if V is None:
                V = Vmoe()
            build = build_layer if case["kind"] == "layer" else build_vit
            flat, io, vcfg, scfg = build(V, case, args.out)
            save_case(args.out, name, flat, io, vcfg, scfg)
        # The README's table is read back from every case's model.safetensors on disk (also
        # those that a run with --cases did not rewrite).
        from safetensors import safe_open

        shapes = {}
        for name in CASES:
            path = os.path.join(args.out, name, "model.safetensors")
            if os.path.exists(path):
                with safe_open(path, "np") as f:
                    shapes[name] = [[k, list(f.get_slice(k).get_shape())] for k in sorted(f.keys())]
        write_tensor_section(os.path.join(args.out, "README.md"), shapes)
        # The command, with the two checkouts' local paths replaced by what they are.
        placeholders = {"--vmoe": "VMOE_CHECKOUT", "--vit-jax": "VISION_TRANSFORMER_CHECKOUT"}
        argv = []
        for a in sys.argv[1:]:
            key = a.split("=", 1)[0]
            if key in placeholders and "=" in a:
                argv.append(f"{key}={placeholders[key]}")
            elif argv and argv[-1] in placeholders:
                argv.append(placeholders[argv[-1]])
            else:
                argv.append(a)
        cmd = "python tools/vmoe_fixtures.py " + " ".join(argv)
        lines = [
            f"fixture_version {FIXTURE_VERSION}",
            f"vmoe {vmoe_sha or 'unknown'} (google-research/vmoe)",
            f"vit_jax {vit_sha or 'unknown'} (google-research/vision_transformer)",
            f"python {platform.python_version()}",
        ]
        for pkg in ("jax", "jaxlib", "flax", "numpy", "ml_dtypes", "safetensors", "torch",
                    "soft-moe-pytorch", "einops"):
            lines.append(f"{pkg} {version(pkg)}")
        lines += [f"platform {platform.platform()} (CPU)",
                  f"date {datetime.date.today().isoformat()}",
                  f"cases {' '.join(args.cases)}",
                  f"command {cmd}"]
        with open(os.path.join(args.out, "VERSIONS.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
