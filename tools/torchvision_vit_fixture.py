#!/usr/bin/env python3
"""Writes tests/fixtures/torchvision_vit/: a torchvision ViT with soft-moe-pytorch MLPs, run by PyTorch.

What it builds
--------------
`torchvision.models.vision_transformer.VisionTransformer` (torchvision's own code, not a copy)
with image_size 28, patch_size 7 (16 patches + the class token), 3 blocks, 2 heads, hidden 16,
mlp 32, 10 classes, its default LayerNorm (eps 1e-6), and:

  * `conv_proj` as torchvision builds it (3 input channels, so the channel order is exercised);
  * the MLPs of blocks 1 and 2 replaced by `soft_moe_pytorch.SoftMoE(dim=16, num_experts=4,
    num_slots=2, expert_mult=2)` (PyPI soft-moe-pytorch 0.1.9), `encoder.layers[k].mlp = SoftMoE(...)`:
    torchvision's `EncoderBlock.forward` computes `x + self.mlp(self.ln_2(x))`, so the SoftMoE
    sees the 17 tokens of one image (one group) and its output is added to the residual.

torchvision's init leaves the head zero and most biases near zero; every parameter is then
perturbed with seeded noise (weights: noise of their own scale; biases, LayerNorm and RMSNorm
weights, the class token and the position embedding: random values) so that nothing is trivially
0 or 1. The model runs in eval mode under `torch.no_grad()` on the CPU in float32, on B = 4 images
with pixels in [0, 1], NCHW as torchvision takes them.

Files (tests/fixtures/torchvision_vit/)
--------------------------------------
  model.safetensors   `safetensors.torch.save_file(model.state_dict())`: torchvision's and
                      soft-moe-pytorch's names and layouts, nothing renamed.
  io.safetensors      `images` [B, 28, 28, 3] (channels last, softmoe's layout: the NCHW input
                      permuted), `logits` [B, 10] (the model's output), `encoded` [B, 17, 16]
                      (after `encoder.ln`, from a forward hook).
  torch_config.json   the constructor arguments, the blocks holding a SoftMoE and its arguments.
  VERSIONS.txt        python, torch, torchvision, soft-moe-pytorch, safetensors, numpy, date.

How to run
----------
In a virtual environment outside the repository with torch, soft-moe-pytorch 0.1.9, safetensors
and numpy (tools/vmoe_fixtures.py's), plus torchvision and pillow (torchvision imports PIL):

    /work/venv-fixtures/bin/pip install torchvision pillow
    /work/venv-fixtures/bin/python tools/torchvision_vit_fixture.py [--out tests/fixtures/torchvision_vit]

(torchvision and pillow may instead be unpacked with `pip install --no-deps --target DIR` and put on
PYTHONPATH, leaving the environment as it is.) The files are byte-identical on a second run, except
VERSIONS.txt's date.
"""

import argparse
import datetime
import json
import os
import platform
import shutil

CONFIG = {"image_size": 28, "patch_size": 7, "num_layers": 3, "num_heads": 2, "hidden_dim": 16,
          "mlp_dim": 32, "num_classes": 10, "dropout": 0.0, "attention_dropout": 0.0}
SOFT_MOE = {"dim": 16, "num_experts": 4, "num_slots": 2, "expert_mult": 2, "dropout": 0.0,
            "geglu": False, "use_layernorm": False, "is_distributed": False}
MOE_BLOCKS = [1, 2]
BATCH = 4
SEED = 14


def build():
    import torch
    from soft_moe_pytorch import SoftMoE
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    model = VisionTransformer(**CONFIG)
    for k in MOE_BLOCKS:
        model.encoder.layers[k].mlp = SoftMoE(**SOFT_MOE)
    model.eval()
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, prm in sorted(model.named_parameters()):
            noise = torch.randn(prm.shape, generator=g)
            if name.endswith("gamma") or (name.endswith(".weight") and prm.dim() == 1):
                prm.copy_(1.0 + 0.25 * noise)  # LayerNorm and RMSNorm weights
            elif name.endswith("bias") or name.endswith("_bias"):
                prm.copy_(0.2 * noise)
            elif name in ("class_token", "encoder.pos_embedding"):
                prm.copy_(0.5 * noise)
            elif name == "slot_embeds" or name.endswith(".slot_embeds"):
                pass  # torch.randn at init already
            else:  # matrices: noise of the init's scale (the head is zero at init: fan-in scale)
                scale = prm.std().item() if prm.std().item() > 0 else (1.0 / prm.shape[-1]) ** 0.5
                prm.add_(scale * noise)
        images = torch.rand(BATCH, 3, CONFIG["image_size"], CONFIG["image_size"], generator=g)
        seen = {}
        hook = model.encoder.ln.register_forward_hook(lambda m, i, o: seen.__setitem__("encoded", o))
        logits = model(images)
        hook.remove()
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    io = {
        "images": images.permute(0, 2, 3, 1).contiguous(),
        "logits": logits.contiguous(),
        "encoded": seen["encoded"].contiguous(),
    }
    return state, io


def versions():
    import importlib.metadata as md

    out = [f"python {platform.python_version()}"]
    for pkg in ["torch", "torchvision", "soft-moe-pytorch", "einops", "safetensors", "numpy", "pillow"]:
        out.append(f"{pkg} {md.version(pkg)}")
    out.append(f"platform {platform.platform()} (CPU)")
    out.append(f"date {datetime.date.today().isoformat()}")
    out.append("command python tools/torchvision_vit_fixture.py")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/fixtures/torchvision_vit")
    args = ap.parse_args()
    from safetensors.torch import save_file

    state, io = build()
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    save_file(state, os.path.join(args.out, "model.safetensors"))
    save_file(io, os.path.join(args.out, "io.safetensors"))
    with open(os.path.join(args.out, "torch_config.json"), "w") as f:
        cfg = {"VisionTransformer": CONFIG, "SoftMoE": SOFT_MOE, "moe_blocks": MOE_BLOCKS}
        json.dump(cfg, f, indent=2)
        f.write("\n")
    with open(os.path.join(args.out, "VERSIONS.txt"), "w") as f:
        f.write(versions())
    for name in sorted(state):
        print(f"{name} {list(state[name].shape)}")
    print("logits", io["logits"].flatten()[:5].tolist())


if __name__ == "__main__":
    main()
