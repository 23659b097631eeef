"""Time per training step and per inference of each variant, and the invariant layer's share.

One process, one CPU thread, process CPU time (``time.process_time``), so
the numbers hold on a machine shared with other jobs; the median of ``--repeats``.

* step: forward, forces (hippynn's ``GradientNode``, ``create_graph=True``),
  energy + force loss, backward, Adam step, on one training batch;
* inference: energy and forces of one batch;
* invariants: the invariant layers alone on the tensor features they saw in
  that batch, with the same derivative orders (training: forward, the force
  backward with a graph, and the backward of that; inference: forward and the
  force backward).  share = invariants / total.

    python -m examples.hiphop.bench                      # methane and ethanol, batch 64
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
VARIANTS = ["hipnn", "hipnn-ts1", "hipnn-ts2", "hiphop-l2n3-hippynn", "hiphop-l2n4-hippynn", "hiphop-l3n3-hippynn",
            "hiphop-l3n3-generic", "hiphop-l3n4-hippynn", "hiphop-l3n4-hippynnlist", "hiphop-l3n4-generic",
            "hiphop-l3n4-flexible", "hiphop-l3n5-flexible", "hiphop-l4n4-generic", "hiphop-l5n3-generic",
            "hiphop-l5n4-generic"]


def _median_cpu(fn, repeats: int) -> float:
    fn()  # warm-up: kernel loading, torch.compile of hippynn's custom kernels
    times = []
    for _ in range(repeats):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return float(np.median(times))


def bench_variant(variant: str, data: dict, batch_size: int, repeats: int) -> dict:
    from examples.hiphop.train import build_experiment

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        modules, database, controller, net = build_experiment(variant, data, 1000, 100, 100, 0, batch_size=batch_size)
    model, loss, _ = modules
    batch = next(iter(database.make_generator("train", "train", batch_size)))
    n_in = len(database.inputs)
    inputs, targets = batch[:n_in], batch[n_in:]
    opt = controller.optimizer

    captured = []
    layers = [lay.invars for lay in net.torch_module.interaction_layers if hasattr(lay, "invars")]
    hooks = [lay.register_forward_hook(lambda m, args, out: captured.append((m, args[0].detach()))) for lay in layers]

    def step():
        out = model(*inputs)
        value = loss(*out, *targets)[0]
        opt.zero_grad()
        value.backward()
        opt.step()

    def inference():
        out = model(*inputs)
        return [o.detach() for o in out]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        step_s = _median_cpu(step, repeats)
        captured.clear()
        inference()
        for h in hooks:
            h.remove()
        inference_s = _median_cpu(inference, repeats)

    def invariants(train: bool):
        for layer, x in captured:
            x = x.clone().requires_grad_(True)
            y = layer(x)
            w = torch.ones_like(y)
            (g,) = torch.autograd.grad(y, x, w, create_graph=True)
            if train:
                g.sum().backward()

    inv_train = _median_cpu(lambda: invariants(True), repeats) if captured else 0.0
    inv_infer = _median_cpu(lambda: invariants(False), repeats) if captured else 0.0
    n_inv = getattr(net.torch_module.interaction_layers[0], "n_invariants", None)
    return {"variant": variant, "n_invariants": n_inv, "batch_size": batch_size,
            "atoms_per_batch": int(np.prod(inputs[database.inputs.index("Z")].shape)),
            "step_ms": 1e3 * step_s, "inference_ms": 1e3 * inference_s,
            "invariants_in_step_ms": 1e3 * inv_train, "invariants_in_inference_ms": 1e3 * inv_infer,
            "invariant_share_step": inv_train / step_s if captured else None,
            "invariant_share_inference": inv_infer / inference_s if captured else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m examples.hiphop.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--system", action="append", choices=["methane", "ethanol"])
    ap.add_argument("--variant", action="append")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "timing.json")
    args = ap.parse_args(argv)

    from examples.hiphop.data import load
    from examples.hiphop.train import environment, set_threads

    set_threads(1)
    results = {"environment": environment(), "clock": "process CPU time, 1 thread, median", "runs": []}
    for system in args.system or ["methane", "ethanol"]:
        data = load(system)
        for variant in args.variant or VARIANTS:
            r = bench_variant(variant, data, args.batch_size, args.repeats)
            r["system"] = system
            results["runs"].append(r)
            share = f"{100 * r['invariant_share_step']:.0f}%" if r["invariant_share_step"] is not None else "-"
            print(f"{system:8s} {variant:26s} K={r['n_invariants']!s:4s} step {r['step_ms']:7.1f} ms "
                  f"(invariants {share}), inference {r['inference_ms']:6.1f} ms", flush=True)
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
