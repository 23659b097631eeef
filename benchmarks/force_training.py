"""The force-training pattern end to end: invariants -> MLP energy -> forces (create_graph) -> loss backward.

This is what training a potential on forces costs per step, and it needs the
second derivative of the invariants (the loss on forces is differentiated
through ``dE/dx``).  The same step is timed for

* ``mlp-floor``        the step with the invariants replaced by a fixed linear map ``x @ W`` (D -> K):
  what the MLP, the double backward through it and the loss cost alone, the floor for any invariants,
* ``optinv-torch``     optinv's basis through ``hop.torch_invariants`` (C kernels: forward, vjp, jvp, hvp),
* ``optinv-h13-torch`` hippynn's own 13 invariants through the generated module's torch adapter,
* ``hippynn``          hippynn's ``calc_invariants``, PyTorch eager,
* ``hippynn-compiled`` the same under ``torch.compile``: expected to fail, because
  AOTAutograd does not support double backward; the error is recorded.  By default
  it fails first on donated buffers (``create_graph=True`` is refused);
  ``hippynn-compiled-no-donation`` turns donation off
  (``torch._functorch.config.donated_buffer = False``) to show the real limit:
  the first derivative works, differentiating it again does not.

The energy of a batch is the sum of an MLP (K -> 64 -> 64 -> 1, SiLU) over its
rows, forces are ``-dE/dx``, the loss ``(E - E_ref)^2 + mean((F - F_ref)^2)``,
and ``loss.backward()`` reaches the MLP's weights.  ``optinv-h13-torch`` and
``hippynn`` compute the same invariants, so their losses and weight gradients
must agree: the run records the largest relative difference.
"""

from __future__ import annotations

import numpy as np

from benchmarks.methods import Unavailable, _h13, _hippynn_fn, _hop, _torch
from benchmarks.timing import measure

METHODS = ("mlp-floor", "optinv-torch", "optinv-h13-torch", "hippynn", "hippynn-compiled", "hippynn-compiled-no-donation")


def invariant_fn(name: str, ctx):
    if name == "mlp-floor":
        torch = _torch()
        k = len(ctx.basis)
        w = torch.from_numpy(np.random.default_rng(11).standard_normal((ctx.signature.dim, k)) / ctx.signature.dim)
        weights = {}

        def linear(x):
            if x.dtype not in weights:
                weights[x.dtype] = w.to(x.dtype)
            return x @ weights[x.dtype]

        return linear
    if name == "optinv-torch":
        return _hop(ctx).torch_invariants
    if name == "optinv-h13-torch":
        return _h13(ctx).torch_invariants
    if name == "hippynn":
        return _hippynn_fn(ctx, compiled=False)
    if name == "hippynn-compiled":
        return _hippynn_fn(ctx, compiled=True)
    if name == "hippynn-compiled-no-donation":  # run_force_training turns donation off around it
        return _hippynn_fn(ctx, compiled=True)
    raise ValueError(name)


def make_step(inv, k: int, dtype, hidden: int = 64):
    """A training step closure and the MLP it trains (same seed, so equal invariants give equal weights)."""
    torch = _torch()
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(
        torch.nn.Linear(k, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, hidden), torch.nn.SiLU(),
        torch.nn.Linear(hidden, 1),
    ).to(dtype)

    def step(x, e_ref, f_ref):
        mlp.zero_grad(set_to_none=True)
        xr = x.detach().requires_grad_(True)
        energy = mlp(inv(xr)).sum()
        (grad,) = torch.autograd.grad(energy, xr, create_graph=True)
        forces = -grad
        loss = (energy - e_ref) ** 2 + ((forces - f_ref) ** 2).mean()
        loss.backward()
        return loss.detach(), [p.grad.detach().clone() for p in mlp.parameters()]

    return step


def run_force_training(ctx, sizes, clock="cpu", min_samples=10, log=print) -> list[dict]:
    """One record per (method, N): per-step time, or the error that stopped the method."""
    torch = _torch()
    tdtype = {"float32": torch.float32, "float64": torch.float64}[ctx.dtype]
    rng = np.random.default_rng(7)
    records = []
    for n in sizes:
        x = torch.from_numpy(0.5 * rng.standard_normal((n, ctx.signature.dim))).to(tdtype)
        e_ref = torch.tensor(1.0, dtype=tdtype)
        f_ref = torch.from_numpy(rng.standard_normal((n, ctx.signature.dim))).to(tdtype)
        results = {}
        for name in METHODS:
            rec = {"section": "force_training", "l_max": ctx.l_max, "n_max": ctx.n_max, "dtype": ctx.dtype,
                   "method": name, "n_rows": n, "threads": 1, "clock": clock}
            no_donation = name.endswith("no-donation")
            if no_donation:  # compiled graphs are cached per code object: start afresh without donation
                torch._dynamo.reset()
                donated = torch._functorch.config.donated_buffer
                torch._functorch.config.donated_buffer = False
            try:
                inv = invariant_fn(name, ctx)
                k = int(inv(x[:2]).shape[-1])
                step = make_step(inv, k, tdtype)
                results[name] = step(x, e_ref, f_ref)
                rec.update(measure(lambda: step(x, e_ref, f_ref), clock, min_samples=min_samples))
                rec["rows_per_s"] = n / rec["median_s"]
            except Unavailable as exc:
                rec["skipped"] = str(exc)
            except Exception as exc:  # noqa: BLE001 - a method that cannot double-backward is a result
                rec["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            finally:
                if no_donation:
                    torch._functorch.config.donated_buffer = donated
                    torch._dynamo.reset()
            records.append(rec)
            what = f"{rec['median_s'] * 1e3:9.2f} ms/step" if "median_s" in rec else rec.get("error", rec.get("skipped"))
            log(f"  force-training {ctx.dtype} N={n:.0e} {name:18s} {what}")
        if "optinv-h13-torch" in results and "hippynn" in results:
            (la, ga), (lb, gb) = results["optinv-h13-torch"], results["hippynn"]
            diff = max([abs(float(la - lb)) / max(abs(float(lb)), 1e-30)]
                       + [float((a - b).abs().max() / b.abs().max().clamp_min(1e-30)) for a, b in zip(ga, gb)])
            for rec in records[-len(METHODS):]:
                if rec["method"] in ("optinv-h13-torch", "hippynn"):
                    rec["max_rel_diff_h13_vs_hippynn"] = diff
    return records
