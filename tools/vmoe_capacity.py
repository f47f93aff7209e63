#!/usr/bin/env python3
"""Writes tests/fixtures/vmoe_capacity.json: expert capacities computed by vmoe's own code.

The sparse baselines size each expert's buffer with vmoe's `compute_capacity` (vmoe/moe.py):

    capacity = ceil(num_tokens * capacity_factor / num_experts)   (ceil_or_round = "ceil")
    ValueError if capacity < 1
    if multiple_of and multiple_of > 0: capacity rounded up to a multiple of multiple_of

with num_tokens = group_size * num_selected_experts for Tokens Choice
(`get_top_experts_per_item_dispatcher`) and num_tokens = group_size for Experts Choice
(`get_top_items_per_expert_dispatcher`); both dispatchers default to multiple_of = 4.

This script does not re-implement that rule: it takes the source of `compute_capacity` (and of
`CeilOrRound`, which its signature names) out of vmoe's moe.py with `ast`, executes it, and calls it
over a grid. Importing vmoe/moe.py as a module would need jax and flax; the function itself only
uses `math` and `absl.logging` (for a warning, replaced here by a logger that is switched off).

Run it from the repository root, with a checkout of google-research/vmoe (a work tree, or a bare
git directory, whose HEAD, or --commit, is read):

    python3 tools/vmoe_capacity.py --vmoe /path/to/vmoe [--commit SHA] [--out tests/fixtures/vmoe_capacity.json]

The shipped fixture was written from google-research/vmoe at commit
942a78bc81d2e63199f0933733582ddae0715416 (2026-06-06). `cargo test --release --lib routing`
checks `Router::capacity` and `routing::compute_capacity` against every row
(`capacity_matches_vmoe_compute_capacity`).

Grid: group tokens 0..=400 (0 is a case vmoe rejects: capacity 0 < 1; 49 and 392 are one and
eight 7x7-patch images), experts 1, 2, 8, 32, capacity factors 0.5, 1, 1.25, 2, k 1, 2,
multiple_of 1, 4, 8, None, 0; plus factors that are not binary fractions (0.1, 0.3, 1.1, 2.5) on
3 and 7 experts, where the float product decides the ceiling.
"""

import argparse
import ast
import json
import logging
import math
import os
import subprocess
import sys
import typing

FIXTURE_VERSION = 1


def moe_source(vmoe: str, commit: str | None) -> tuple[str, str]:
    """vmoe/moe.py's text and the commit it comes from."""
    is_bare = not os.path.isdir(os.path.join(vmoe, "vmoe")) and os.path.isdir(os.path.join(vmoe, "objects"))
    git = ["git", "--git-dir", vmoe] if is_bare else ["git", "-C", vmoe]
    rev = commit or "HEAD"
    sha = subprocess.run(git + ["rev-parse", rev], check=True, capture_output=True, text=True).stdout.strip()
    if is_bare or commit:
        text = subprocess.run(git + ["show", f"{sha}:vmoe/moe.py"], check=True, capture_output=True, text=True).stdout
    else:
        with open(os.path.join(vmoe, "vmoe", "moe.py"), encoding="utf-8") as f:
            text = f.read()
    return text, sha


def load_compute_capacity(text: str):
    """Executes vmoe's own `CeilOrRound` and `compute_capacity` definitions; returns the function."""
    tree = ast.parse(text)
    wanted = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "compute_capacity":
            wanted.append(node)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "CeilOrRound" for t in node.targets):
            wanted.append(node)
    names = sorted(n.name if isinstance(n, ast.FunctionDef) else "CeilOrRound" for n in wanted)
    if names != ["CeilOrRound", "compute_capacity"]:
        sys.exit(f"vmoe/moe.py: expected CeilOrRound and compute_capacity at module level, found {names}")
    quiet = logging.getLogger("vmoe.compute_capacity")
    quiet.disabled = True
    namespace = {"math": math, "logging": quiet, **{k: getattr(typing, k) for k in ("Any", "Literal", "Optional", "Tuple", "Union")}}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), "vmoe/moe.py", "exec"), namespace)
    return namespace["compute_capacity"]


def capacities(compute_capacity, tokens, experts, factor, k, multiple_of):
    """vmoe's capacity for each group size (None where vmoe raises ValueError)."""
    out = []
    for g in tokens:
        try:
            out.append(compute_capacity(num_tokens=g * k, num_experts=experts, capacity_factor=factor, multiple_of=multiple_of))
        except ValueError:
            out.append(None)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vmoe", required=True, help="google-research/vmoe checkout (work tree or bare git dir)")
    ap.add_argument("--commit", help="commit to read vmoe/moe.py from (default HEAD)")
    ap.add_argument("--out", default="tests/fixtures/vmoe_capacity.json")
    args = ap.parse_args()
    text, sha = moe_source(args.vmoe, args.commit)
    compute_capacity = load_compute_capacity(text)
    tokens = list(range(0, 401))
    cases = []
    grids = [
        ([1, 2, 8, 32], [0.5, 1.0, 1.25, 2.0], [1, 2], [1, 4, 8, None, 0]),
        ([3, 7], [0.1, 0.3, 1.1, 2.5], [1, 2], [1, 4]),
    ]
    for experts_list, factors, ks, multiples in grids:
        for experts in experts_list:
            for factor in factors:
                for k in ks:
                    for multiple_of in multiples:
                        cases.append({
                            "experts": experts,
                            "capacity_factor": factor,
                            "k": k,
                            "multiple_of": multiple_of,
                            "capacity": capacities(compute_capacity, tokens, experts, factor, k, multiple_of),
                        })
    # One JSON object per line, so that a diff shows which case moved.
    lines = ",\n".join("    " + json.dumps(c, separators=(",", ":")) for c in cases)
    head = {
        "version": FIXTURE_VERSION,
        "source": "google-research/vmoe vmoe/moe.py compute_capacity (ceil_or_round='ceil'), executed by tools/vmoe_capacity.py",
        "vmoe_commit": sha,
        "num_tokens": "group_tokens * k (k = 1 for Experts Choice)",
        "capacity": "per group_tokens 0..=400; null where vmoe raises ValueError",
        "group_tokens": [tokens[0], tokens[-1]],
    }
    body = json.dumps(head, indent=2)[:-2] + ',\n  "cases": [\n' + lines + "\n  ]\n}\n"
    json.loads(body)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(body)
    rows = sum(len(c["capacity"]) for c in cases)
    print(f"wrote {args.out}: {len(cases)} cases, {rows} capacities, vmoe {sha}")


if __name__ == "__main__":
    main()
